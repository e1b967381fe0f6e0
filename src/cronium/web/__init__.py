"""The server-rendered web UI: Jinja2 pages, HTMX fragments and a little plain JavaScript.

Pages read through the same domain code as the REST API; forms write through the REST API
itself (`static/js/app.js`), so the browser sees exactly the API's validation errors.
"""
