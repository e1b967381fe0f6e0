"""Tool integrations. Each lives in its own folder and is registered in `registry`."""
