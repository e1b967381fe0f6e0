"""The table of cases: each a way a Bash, Python or Node.js script prints a secret.

SIMPLE and LONG come from the event's env, FANCY, PEM and SVC from secret variables (read
through the SDK), the token from CRONIUM_EXECUTION_TOKEN. The limits
(leak_limits.py) are cases too.
"""

from __future__ import annotations

import base64

from tests.security.leak_corpus import (
    Case,
    M,
    Secrets,
    all_masked,
    last_line,
    lines,
    lines_of,
    masked_within,
)
from tests.security.leak_limits import LIMITS

XTRACE_OFF = "{ set +x; } 2>/dev/null"


def _pem_count(s: Secrets) -> int:
    return s.pem_lines


def _inner_basic(s: Secrets) -> str:
    return base64.b64encode(b"user:" + s.simple.encode()).decode()[8:-4]


BASH = [
    Case("bash-echo", "bash", 'echo "$SIMPLE"', lines(M)),
    Case("bash-stderr", "bash", 'echo "$SIMPLE" >&2', lines(M), stream="stderr"),
    Case("bash-line-start", "bash", 'echo "$SIMPLE is the key"', lines(f"{M} is the key")),
    Case("bash-line-end", "bash", 'echo "the key is $SIMPLE"', lines(f"the key is {M}")),
    Case("bash-adjacent-text", "bash", 'echo "abc${SIMPLE}xyz"', lines(f"abc{M}xyz")),
    Case(
        "bash-repeated",
        "bash",
        'echo "$SIMPLE, $SIMPLE and $SIMPLE$SIMPLE"',
        lines(f"{M}, {M} and {M}"),  # adjacent occurrences merge into one mask
    ),
    Case("bash-two-secrets", "bash", 'echo "$SIMPLE:$FANCY"', lines(f"{M}:{M}")),
    Case(
        "bash-split-writes",
        "bash",
        "printf '%s' \"${SIMPLE:0:7}\"; sleep 0.2; printf '%s\\n' \"${SIMPLE:7}\"",
        lines(M),
    ),
    Case(
        "bash-split-writes-stderr",
        "bash",
        "printf 'k=%s' \"${SIMPLE:0:7}\" >&2; sleep 0.2; printf '%s;\\n' \"${SIMPLE:7}\" >&2",
        lines(f"k={M};"),
        stream="stderr",
    ),
    Case("bash-fancy", "bash", "printf '%s\\n' \"$FANCY\"", lines(M)),
    Case("bash-env-dump", "bash", "env | grep '^SIMPLE='", lines(f"SIMPLE={M}")),
    Case(
        "bash-xtrace",
        "bash",
        f'set -x; : "$SIMPLE"; {XTRACE_OFF}',
        lines(f"+ : {M}"),
        stream="stderr",
    ),
    Case(
        "bash-xtrace-quoted",
        "bash",
        f'set -x; : "$FANCY"; {XTRACE_OFF}',
        lines(f"+ : '{M}'"),  # bash prints it as 'Pa"ss\wö'\''rd…'
        stream="stderr",
    ),
    Case(
        "bash-xtrace-header",
        "bash",
        f'set -x; : -H "Authorization: Bearer $SIMPLE"; {XTRACE_OFF}',
        lines(f"+ : -H 'Authorization: Bearer {M}'"),
        stream="stderr",
    ),
    Case(
        "bash-xtrace-pem",
        "bash",
        f'set -x; : "$PEM"; {XTRACE_OFF}',
        lines_of(lambda s: [f"+ : '{M}", *[M] * (s.pem_lines - 2), f"{M}'"]),
        stream="stderr",
    ),
    Case("bash-declare", "bash", "declare -p FANCY", lines(f'declare -- FANCY="{M}"')),
    Case("bash-base64", "bash", "printf '%s' \"$SIMPLE\" | base64", lines(M)),
    Case("bash-base64-echo", "bash", 'echo "$SIMPLE" | base64', lines(f"{M}Cg==")),
    Case(
        "bash-base64-no-padding",
        "bash",
        "printf '%s' \"$FANCY\" | base64 -w0 | tr -d '='; echo",
        lines(M),
    ),
    Case(
        "bash-base64-urlsafe",
        "bash",
        "printf '%s' \"$FANCY\" | base64 -w0 | tr '+/' '-_'; echo",
        lines(M),
    ),
    Case(
        "bash-base64-urlsafe-no-padding",
        "bash",
        "printf '%s' \"$FANCY\" | base64 -w0 | tr '+/' '-_' | tr -d '='; echo",
        lines(M),
    ),
    Case("bash-base64-wrapped-76", "bash", "printf '%s' \"$LONG\" | base64", lines(M, M, M)),
    Case(
        "bash-base64-wrapped-76-echo",
        "bash",
        'echo "$LONG" | base64',
        lines(M, M, f"{M}Cg=="),  # the newline's group stays: it encodes no secret byte
    ),
    Case("bash-base64-wrapped-64", "bash", "printf '%s' \"$LONG\" | base64 -w 64", lines(M, M, M)),
    Case(
        "bash-base64-of-pem",
        "bash",
        "printf '%s\\n' \"$PEM\" | base64 -w 64",
        all_masked(tail=4),
    ),
    Case(
        "bash-basic-auth",
        "bash",
        "printf 'Authorization: Basic %s\\n' \"$(printf 'user:%s' \"$SIMPLE\" | base64 -w0)\"",
        masked_within("Authorization: Basic ", 12, _inner_basic),
    ),
    Case(
        "bash-basic-auth-key-as-user",
        "bash",
        "printf '%s:' \"$SIMPLE\" | base64",
        lines(f"{M}Og=="),
    ),
    Case(
        "bash-jq-pretty",
        "bash",
        "jq -n --arg t \"$FANCY\" '{token: $t}'",
        lines("{", f'  "token": "{M}"', "}"),
    ),
    Case(
        "bash-jq-compact",
        "bash",
        "jq -cn --arg t \"$FANCY\" '{token: $t}'",
        lines(f'{{"token":"{M}"}}'),
    ),
    Case("bash-jq-uri", "bash", "jq -rn --arg t \"$FANCY\" '$t|@uri'", lines(M)),
    Case("bash-pem", "bash", "printf '%s\\n' \"$PEM\"", all_masked(_pem_count)),
    Case(
        "bash-pem-crlf",
        "bash",
        "printf '%s\\n' \"$PEM\" | sed 's/$/\\r/'",
        all_masked(_pem_count),
    ),
    Case(
        "bash-pem-numbered",
        "bash",
        "printf '%s\\n' \"$PEM\" | cat -n",
        lines_of(lambda s: [f"{n:>6}\t{M}" for n in range(1, s.pem_lines + 1)]),
    ),
    Case("bash-json-secret", "bash", "printf '%s\\n' \"$SVC\"", lines(M)),
    Case("bash-json-secret-field", "bash", 'jq -r .password <<<"$SVC"', lines(M)),
    Case("bash-token", "bash", 'echo "token $CRONIUM_EXECUTION_TOKEN"', lines(f"token {M}")),
    Case(
        "bash-token-header",
        "bash",
        'echo "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN" >&2',
        lines(f"Authorization: Bearer {M}"),
        stream="stderr",
    ),
    Case(
        "bash-runtime-rotated-secret",
        "bash",
        "\n".join(
            [
                'OLD="$(cronium_get_variable rotated)"',
                'NEW="rot-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d " \\n")"',
                'cronium_set_variable rotated "$NEW"',
                'echo "old=$OLD"',
                'echo "new=$NEW"',
                "printf '%s' \"$NEW\" | base64",
            ]
        ),
        lines(f"old={M}", f"new={M}", M),
    ),
]

PYTHON = [
    Case("python-print", "python", "print(SIMPLE)", lines(M)),
    Case(
        "python-stderr",
        "python",
        "print('key', SIMPLE, file=sys.stderr)",
        lines(f"key {M}"),
        stream="stderr",
    ),
    Case("python-json", "python", "print(json.dumps(FANCY))", lines(f'"{M}"')),
    Case(
        "python-json-utf8",
        "python",
        "print(json.dumps({'token': FANCY}, ensure_ascii=False))",
        lines(f'{{"token": "{M}"}}'),
    ),
    Case(
        "python-json-twice",
        "python",
        "print(json.dumps(json.dumps({'t': FANCY})))",
        lines(f'"{{\\"t\\": \\"{M}\\"}}"'),
    ),
    Case("python-repr", "python", "print(repr(FANCY))", lines(f"'{M}'")),
    Case("python-dict", "python", "print({'token': FANCY})", lines(f"{{'token': '{M}'}}")),
    Case("python-quote", "python", "print(quote(FANCY))", lines(M)),
    Case("python-quote-all", "python", "print(quote(FANCY, safe=''))", lines(M)),
    Case("python-quote-plus", "python", "print(quote_plus(FANCY))", lines(M)),
    Case(
        "python-urlencode",
        "python",
        "print('https://api.example/cb?' + urlencode({'token': FANCY, 'a': 1}))",
        lines(f"https://api.example/cb?token={M}&a=1"),
    ),
    Case("python-base64", "python", "print(base64.b64encode(FANCY.encode()).decode())", lines(M)),
    Case(
        "python-base64-urlsafe",
        "python",
        "print(base64.urlsafe_b64encode(FANCY.encode()).decode())",
        lines(M),
    ),
    Case(
        "python-base64-urlsafe-no-padding",
        "python",
        "print(base64.urlsafe_b64encode(FANCY.encode()).decode().rstrip('='))",
        lines(M),
    ),
    Case(
        "python-encodebytes-pem",
        "python",
        "sys.stdout.write(base64.encodebytes(PEM.encode()).decode())",
        all_masked(tail=7),  # a last line under 8 characters is too short to mask
    ),
    Case("python-pem", "python", "print(PEM)", all_masked(_pem_count)),
    Case(
        "python-pem-enumerated",
        "python",
        "for n, line in enumerate(PEM.splitlines()):\n    print(n, line)",
        lines_of(lambda s: [f"{n} {M}" for n in range(s.pem_lines)]),
    ),
    Case(
        "python-pem-crlf",
        "python",
        "sys.stdout.write(PEM.replace('\\n', '\\r\\n') + '\\r\\n')",
        all_masked(_pem_count),
    ),
    Case(
        "python-pem-json", "python", "print(json.dumps({'key': PEM}))", lines(f'{{"key": "{M}"}}')
    ),
    Case(
        "python-pem-json-crlf",
        "python",
        "print(json.dumps(PEM.replace('\\n', '\\r\\n')))",
        lines_of(lambda s: ['"' + "\\r\\n".join([M] * s.pem_lines) + '"']),  # line by line
    ),
    Case(
        "python-traceback",
        "python",
        "try:\n    raise ValueError('bad token ' + SIMPLE)\nexcept ValueError:\n    traceback.print_exc()",
        last_line(f"ValueError: bad token {M}"),
        stream="stderr",
    ),
    Case(
        "python-logging",
        "python",
        "logging.basicConfig(format='%(levelname)s %(message)s')\nlogging.warning('token=%s', SIMPLE)",
        lines(f"WARNING token={M}"),
        stream="stderr",
    ),
    Case(
        "python-split-writes",
        "python",
        "sys.stdout.write(SIMPLE[:5]); sys.stdout.flush(); time.sleep(0.2)\n"
        "sys.stdout.write(SIMPLE[5:] + '\\n')",
        lines(M),
    ),
    Case("python-adjacent", "python", "print(f'x{SIMPLE}y{SIMPLE}z')", lines(f"x{M}y{M}z")),
    Case("python-json-secret-field", "python", "print(SVC['password'])", lines(M)),
    Case("python-json-secret-whole", "python", "print(json.dumps(SVC))", lines(M)),
    Case(
        "python-token",
        "python",
        "print(os.environ['CRONIUM_EXECUTION_TOKEN'])",
        lines(M),
    ),
    Case(
        "python-tool-action-error",
        "python",
        "try:\n    cronium.execute_tool_action('webhook', 'send', {'json': {'x': 1}})\n"
        "except Exception as exc:\n    print('failed:', exc)",
        lambda got, s: (
            None
            if len(got) == 1 and "answered HTTP 401" in got[0] and M in got[0]
            else "expected the receiver's answer, masked"
        ),
    ),
]

NODE = [
    Case("node-log", "node", "console.log(SIMPLE);", lines(M)),
    Case("node-error", "node", "console.error('key', SIMPLE);", lines(f"key {M}"), stream="stderr"),
    Case("node-json", "node", "console.log(JSON.stringify(FANCY));", lines(f'"{M}"')),
    Case(
        "node-json-object",
        "node",
        "console.log(JSON.stringify({ token: FANCY }));",
        lines(f'{{"token":"{M}"}}'),
    ),
    Case(
        "node-json-twice",
        "node",
        "console.log(JSON.stringify(JSON.stringify({ t: FANCY })));",
        lines(f'"{{\\"t\\":\\"{M}\\"}}"'),
    ),
    Case("node-inspect", "node", "console.log({ token: FANCY });", lines(f"{{ token: `{M}` }}")),
    Case("node-encode-uri-component", "node", "console.log(encodeURIComponent(FANCY));", lines(M)),
    Case("node-encode-uri", "node", "console.log(encodeURI(FANCY));", lines(M)),
    Case("node-base64", "node", "console.log(b64(FANCY));", lines(M)),
    Case(
        "node-base64url",
        "node",
        "console.log(Buffer.from(FANCY).toString('base64url'));",
        lines(M),
    ),
    Case(
        "node-split-writes",
        "node",
        "process.stdout.write(SIMPLE.slice(0, 5)); await sleep(200);"
        " process.stdout.write(SIMPLE.slice(5) + '\\n');",
        lines(M),
    ),
    Case(
        "node-error-stack",
        "node",
        "console.error(new Error('bad ' + SIMPLE).stack.split('\\n')[0]);",
        lines(f"Error: bad {M}"),
        stream="stderr",
    ),
    Case("node-template", "node", "console.log(`[${SIMPLE}]`);", lines(f"[{M}]")),
    Case("node-pem", "node", "console.log(PEM);", all_masked(_pem_count)),
    Case("node-json-secret-whole", "node", "console.log(JSON.stringify(SVC));", lines(M)),
    Case("node-json-secret-field", "node", "console.log(SVC.password);", lines(M)),
    Case(
        "node-token",
        "node",
        "console.log(util.format('%s', process.env.CRONIUM_EXECUTION_TOKEN));",
        lines(M),
    ),
    Case(
        "node-basic-auth",
        "node",
        "console.log('Authorization: Basic ' + b64('user:' + SIMPLE));",
        masked_within("Authorization: Basic ", 12, _inner_basic),
    ),
]

CASES = BASH + PYTHON + NODE + LIMITS


def _python_output(out: object, s: Secrets) -> str | None:
    want = {"token": M, "list": [M, "plain"], "pem": M, "nested": {"b64": M}, "n": 1}
    return None if out == want else f"expected {want!r}"


def _node_output(out: object, s: Secrets) -> str | None:
    if not isinstance(out, dict) or out.get("svc") != {"user": M, "password": M}:
        return "expected svc's fields masked"
    if out.get("url") != M:
        return "expected the URL-encoded secret masked"
    basic = str(out.get("basic"))
    return None if M in basic and _inner_basic(s) not in basic else "expected basic masked"


# What each corpus script sets as its output (Runtime API), and how the run shows it.
OUTPUTS = {
    "bash": ('cronium_output "$SIMPLE"', lambda out, s: None if out == M else "expected the mask"),
    "python": (
        "cronium.output({'token': FANCY, 'list': [SIMPLE, 'plain'], 'pem': PEM,"
        " 'nested': {'b64': base64.b64encode(SIMPLE.encode()).decode()}, 'n': 1})",
        _python_output,
    ),
    "node": (
        "await cronium.output({ basic: 'Basic ' + b64('user:' + SIMPLE), svc: SVC,"
        " url: encodeURIComponent(FANCY) });",
        _node_output,
    ),
}
