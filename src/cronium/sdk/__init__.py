"""The SDKs shipped into every run, and the environment that pre-loads them.

Python: `sitecustomize` on PYTHONPATH puts `cronium` into builtins. Node: `--require` of
preload.js sets `globalThis.cronium`; NODE_PATH makes `require('cronium')` work. Bash:
BASH_ENV sources cronium.sh before the script.
"""

from __future__ import annotations

from pathlib import Path

SDK_DIR = Path(__file__).parent


def preload_env(root: str) -> dict[str, str]:
    """Environment that pre-loads the SDKs found under `root` (a host or container path)."""
    return {
        "PYTHONPATH": f"{root}/python",
        "NODE_PATH": f"{root}/node",
        "NODE_OPTIONS": f"--require {root}/node/preload.js",
        "BASH_ENV": f"{root}/bash/cronium.sh",
    }


def sdk_files() -> dict[str, bytes]:
    """Relative path → content of every SDK file, for copying into containers or over SFTP."""
    files: dict[str, bytes] = {}
    for path in sorted(SDK_DIR.rglob("*")):
        if (
            path.is_file()
            and path.suffix in {".py", ".js", ".ts", ".sh"}
            and path.name != "__init__.py"
        ):
            files[str(path.relative_to(SDK_DIR))] = path.read_bytes()
    return files
