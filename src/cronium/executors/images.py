"""Which image a script runs in, and making sure the Docker engine has it.

An event's own `image` wins; otherwise the language default from settings
(`CRONIUM_IMAGE_PYTHON`, `CRONIUM_IMAGE_NODE`, `CRONIUM_IMAGE_BASH`).

A missing image is pulled once, bounded by `CRONIUM_IMAGE_PULL_TIMEOUT_SECONDS`; when that
fails the job fails permanently with a message that names the image and the reason. Images
in the `cronium/` namespace are built on the host by `scripts/build-images` and are never
pulled: a registry namespace of that name is not ours, so pulling it would run a stranger's
image.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from cronium.executors.base import ExecutorError

log = logging.getLogger("cronium.executors")

LOCAL_ONLY_PREFIX = "cronium/"
BUILD_HINT = "cronium/* images are built on this host by scripts/build-images and never pulled"


@dataclass(frozen=True)
class ImageDefaults:
    """The image per script language."""

    python: str = "python:3.12-slim"
    node: str = "node:22-slim"
    bash: str = "cronium/bash:latest"

    @classmethod
    def from_settings(cls, settings: object) -> ImageDefaults:
        return cls(
            python=str(getattr(settings, "image_python", cls.python)),
            node=str(getattr(settings, "image_node", cls.node)),
            bash=str(getattr(settings, "image_bash", cls.bash)),
        )

    def as_dict(self) -> Mapping[str, str]:
        return {"python": self.python, "node": self.node, "bash": self.bash}


def image_for(language: str, override: str | None, defaults: ImageDefaults) -> str:
    """The event's image when it names one, else the language default."""
    if override and override.strip():
        return override.strip()
    image = defaults.as_dict().get(language)
    if image is None:
        raise ExecutorError(f"unsupported language {language!r}", permanent=True)
    return image


def is_local_only(image: str) -> bool:
    return image.startswith(LOCAL_ONLY_PREFIX)


def missing_image_error(image: str, reason: str) -> ExecutorError:
    return ExecutorError(
        f"image {image} not found locally and pulling it failed: {reason}", permanent=True
    )


async def has_image(docker: aiodocker.Docker, image: str) -> bool:
    try:
        await docker.images.inspect(image)
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def pull_image(docker: aiodocker.Docker, image: str, timeout_s: float) -> None:
    """Pull `image` or raise the permanent "not found locally and pulling it failed" error."""
    if is_local_only(image):
        raise missing_image_error(image, BUILD_HINT)
    log.info("pulling image %s", image, extra={"action": "image_pull"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(timeout_s):
            await docker.images.pull(image)
    except TimeoutError:
        raise missing_image_error(image, f"no answer within {timeout_s:g} s") from None
    except DockerError as exc:
        raise missing_image_error(image, _reason(exc)) from None
    except (OSError, aiohttp.ClientError) as exc:
        raise missing_image_error(image, str(exc) or type(exc).__name__) from None
    # A pull whose progress stream ended without an error but left no image is a failure too.
    if not await has_image(docker, image):
        raise missing_image_error(image, "the engine reported no error but has no such image")
    log.info("pulled image %s in %.1f s", image, loop.time() - started)


async def ensure_image(docker: aiodocker.Docker, image: str, timeout_s: float) -> None:
    """Make sure the engine has `image` (pull it when missing)."""
    if not await has_image(docker, image):
        await pull_image(docker, image, timeout_s)


def _reason(exc: DockerError) -> str:
    message = exc.message if isinstance(exc.message, str) else str(exc.message)
    return message.strip() or f"Docker answered HTTP {exc.status}"
