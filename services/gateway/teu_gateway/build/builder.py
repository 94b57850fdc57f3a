"""Builds an image from a Dockerfile and its context, step by step, through the back ends.

Each stage starts from its FROM image (pulled if missing, or with ``--pull``) or from an earlier
stage. A step that only changes the configuration (ENV, CMD, ...) changes the builder's state and
is remembered as a history line with no layer. RUN is a container of the current image run through
the runtime like any other (same isolation, its output streamed back), then committed by storage;
COPY and ADD extract a tar the builder writes of the context into a snapshot of the current image,
then commit it. Each layer step is looked up first in the build cache (storage's, keyed by the
current image, its configuration, the history lines since it, the instruction and, for COPY/ADD,
the digest of what is copied): a hit takes the image it recorded, so a rebuild with nothing changed
starts no container. Only the stages the target needs are built. A failure anywhere removes what
the step made (container, snapshot) and tags nothing; the images of the steps done stay as cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import os
import posixpath
import re
import secrets
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import structlog

from teu_api.errors import FailedPrecondition, InvalidArgument, NotFound, TeuError, Unimplemented
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2
from teu_common import fetch
from teu_common.opening import first_message
from teu_gateway import limits
from teu_gateway.backends import call, idempotent, retry_unavailable, stream
from teu_gateway.build import instructions, words
from teu_gateway.build.context import Context, Entry, Owner, content_digest, unpack, write_copy
from teu_gateway.build.dockerfile import Dockerfile, Instruction, Stage, parse, parse_instruction
from teu_gateway.flows import Flows
from teu_gateway.logflows import outputs

__all__ = ["Builder", "build", "clean_up", "leftovers", "spool"]

log = structlog.get_logger()
BUILD_LABEL = "io.teu.build"
SNAPSHOTS = "snapshots"
SMALL_WRITE = 256 << 10  # a write this small is not worth a thread hop
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20
EMPTY_TAR = bytes(2 * tarfile.BLOCKSIZE)  # a tar's end and nothing before it
#: Build args every Dockerfile may use without declaring them; kept out of the image's history.
PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
_URL = re.compile(r"^https?://")
_SUBSTITUTION = re.compile(r"\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}


def _platform_args() -> dict[str, str]:
    arch = _ARCH.get(os.uname().machine, os.uname().machine)
    out = {}
    for side in ("BUILD", "TARGET"):
        out.update({f"{side}PLATFORM": f"linux/{arch}", f"{side}OS": "linux", f"{side}ARCH": arch, f"{side}VARIANT": ""})
    return out


def leftovers(folder: Path) -> tuple[list[Path], list[str]]:
    """What builds cut short by the gateway's death left in ``folder``: its files, and the keys of
    their snapshots. Read at the gateway's start, before any build of its own."""
    (folder / SNAPSHOTS).mkdir(parents=True, exist_ok=True, mode=0o700)
    files = [p for p in folder.iterdir() if p.is_file()]
    return files, [p.name for p in (folder / SNAPSHOTS).iterdir()]


async def clean_up(flows: Flows, folder: Path, files: list[Path], snapshots: list[str]) -> None:
    """Removes what :func:`leftovers` found, and the containers of builds (no build outlives the
    gateway that ran it)."""
    for path in files:
        path.unlink(missing_ok=True)
    try:
        for key in snapshots:
            req = st.RemoveSnapshotRequest(key=key)
            await retry_unavailable("storage", functools.partial(flows.b.storage.RemoveSnapshot, req))
            (folder / SNAPSHOTS / key).unlink(missing_ok=True)
        for c in await retry_unavailable("runtime", lambda: flows.containers(True)):
            if BUILD_LABEL in c.spec.labels:
                await flows.remove(c.id, force=True, volumes=True)
    except TeuError as exc:
        log.warning("build_clean_up_failed", error=exc.message)


async def spool(folder: Path, chunks: AsyncIterator[bytes]) -> Path:
    """Writes tar chunks to a file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="context-", suffix=".tar", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks:
                if len(chunk) > SMALL_WRITE:
                    await asyncio.to_thread(f.write, chunk)
                else:
                    f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@dataclass
class State:
    """Where a stage stands: the image its layers are, the configuration on top, the history lines
    of the configuration steps since that image, and the ARGs it declared."""

    image: st.Image
    config: types_pb2.ImageConfig
    pending: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False

    def copy(self) -> State:
        config = types_pb2.ImageConfig()
        config.CopyFrom(self.config)
        return State(self.image, config, list(self.pending), dict(self.args), self.cmd_set)


class Builder:
    """One build: ``run`` streams its progress and ends with the result."""

    def __init__(self, flows: Flows, context: Context, options: gw.BuildOptions, folder: Path) -> None:
        self.f = flows
        self.b = flows.b
        self.ctx = context
        self.o = options
        self.folder = folder
        self.id = secrets.token_hex(6)
        self.used_args: set[str] = set()
        self.done: dict[int, State] = {}
        self.step = 0
        self.total = 0

    # --- the whole build ------------------------------------------------------------------

    async def run(self) -> AsyncIterator[gw.BuildResponse]:
        """Builds, yielding progress lines, RUN output, then the result."""
        df = parse(self.ctx.read_text(self.o.dockerfile or "Dockerfile"))
        globals_ = self._global_args(df)
        wanted = self._needed(df, globals_)
        self.total = sum(1 + len(df.stages[i].instructions) for i in wanted)
        for i in wanted:
            async for r in self._stage(df, df.stages[i], globals_):
                yield r
        final = self.done[wanted[-1]]
        image = await self._finish(final)
        unused = sorted(set(self.o.build_args) - self.used_args - PROXY_ARGS)
        if unused:
            yield _status(f"[Warning] One or more build-args {unused} were not consumed")
        yield _status(f"Successfully built {_short(image.id)}")
        for tag in self.o.tags:
            if _full_ref(tag) not in image.repo_tags:  # a cached image may carry it already
                await call("storage", self.b.storage.TagImage(st.TagImageRequest(source=image.id, target=tag)))
            yield _status(f"Successfully tagged {tag}")
        yield gw.BuildResponse(result=gw.BuildResult(image_id=image.id, tags=list(self.o.tags)))

    def _global_args(self, df: Dockerfile) -> dict[str, str]:
        values = _platform_args()
        for ins in df.global_args:
            for name, default in _arg_decls(ins, values, df.escape):
                if name in self.o.build_args:
                    values[name] = self.o.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = default
        return values

    def _needed(self, df: Dockerfile, globals_: Mapping[str, str]) -> list[int]:
        """The stages the target needs, in order."""
        if self.o.target:
            found = df.stage_index(self.o.target, numbers=False)
            if found is None:
                raise InvalidArgument(f"target stage {self.o.target} could not be found")
            target = found
        else:
            target = len(df.stages) - 1
        needed: set[int] = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            stage = df.stages[i]
            froms = [df.stage_index(words.word(stage.base, globals_, df.escape), numbers=False)]
            froms += [
                df.stage_index(ins.flags["from"]) for ins in stage.instructions if ins.keyword == "COPY" and "from" in ins.flags
            ]
            todo += [j for j in froms if j is not None and j < i]
        return sorted(needed)

    async def _finish(self, state: State) -> st.Image:
        """The image of the target stage: its last layer's, or one more with the configuration on top."""
        config = state.config
        for k, v in self.o.labels.items():
            config.labels[k] = v
        if not state.pending and not self.o.labels:
            return state.image
        key = self._key(state, "CONFIG")
        found = await self._cached(key)
        if found is not None:
            return found
        req = st.ConfigureImageRequest(image_id=state.image.id, config=config, empty_steps=state.pending, build_key=key)
        return (await call("storage", self.b.storage.ConfigureImage(req))).image

    # --- stages ---------------------------------------------------------------------------

    async def _stage(self, df: Dockerfile, stage: Stage, globals_: Mapping[str, str]) -> AsyncIterator[gw.BuildResponse]:
        yield self._announce(stage.source)
        base = words.word(stage.base, globals_, df.escape)
        if not base:
            raise stage.source.error(f"base name ({stage.base}) should not be blank")
        if "platform" in stage.source.flags:
            wanted, host = words.word(stage.source.flags["platform"], globals_, df.escape), globals_["TARGETPLATFORM"]
            if wanted.split("/")[:2] != host.split("/")[:2]:
                raise stage.source.error(f"--platform={wanted}: this engine builds for {host} only")
        state = await self._base(base, df)
        yield _status(f" ---> {_short(state.image.id)}")
        if state.config.on_build:
            triggers = [parse_instruction(t, stage.source.line) for t in state.config.on_build]
            del state.config.on_build[:]
            yield _status(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for ins in triggers:
                async for r in self._instruction(df, stage, ins, state, globals_):
                    yield r
        for ins in stage.instructions:
            yield self._announce(ins)
            async for r in self._instruction(df, stage, ins, state, globals_):
                yield r
        self.done[stage.index] = state

    def _announce(self, ins: Instruction) -> gw.BuildResponse:
        self.step += 1
        return _status(f"Step {self.step}/{self.total} : {ins.original}")

    async def _base(self, base: str, df: Dockerfile) -> State:
        stage = df.stage_index(base, numbers=False)
        if stage is not None and stage in self.done:
            return self.done[stage].copy()
        if base.lower() == "scratch":
            image = await self._scratch()
        else:
            image = await self._image(base, self.o.pull)
        config = types_pb2.ImageConfig()
        config.CopyFrom(image.config)
        if not any(e.startswith("PATH=") for e in config.env):
            config.env.append("PATH=" + DEFAULT_PATH)  # as Docker's builders do for a base without one
        return State(image, config)

    async def _scratch(self) -> st.Image:
        """The empty image ``FROM scratch`` starts from (one per engine, found in the cache)."""
        key = "sha256:" + hashlib.sha256(b"scratch").hexdigest()
        found = await self._cached(key)
        if found is not None:
            return found
        req = st.ConfigureImageRequest(image_id="", config=types_pb2.ImageConfig(), build_key=key)
        return (await call("storage", self.b.storage.ConfigureImage(req))).image

    async def _image(self, ref: str, pull: bool) -> st.Image:
        """An image by reference, pulled when missing (always with ``pull``)."""
        if not pull:
            try:
                return (await idempotent("storage", lambda: self.b.storage.GetImage(st.GetImageRequest(ref=ref)))).image
            except NotFound:
                pass
        registry = _registry(ref)
        host = registry.rpartition(":")[0] if registry.rpartition(":")[2].isdigit() else registry
        loopback = fetch.is_loopback(host.strip("[]"))
        req = st.PullRequest(ref=ref, insecure=self.o.insecure and loopback, auth=self.o.auth.get(registry))
        image = None
        async for part in stream("storage", self.b.storage.Pull(req)):
            if part.WhichOneof("part") == "image":
                image = part.image
        if image is None:
            raise NotFound(f"pull access denied or no such image: {ref}")
        return image

    # --- instructions ---------------------------------------------------------------------

    def _env(self, state: State) -> dict[str, str]:
        """Variables in scope: the stage's ARGs, then ENV over them."""
        env = dict(state.args)
        env.update(e.partition("=")[::2] for e in state.config.env)
        return env

    def _check_defined(self, ins: Instruction, stage: Stage, env: Mapping[str, str]) -> None:
        """An ARG used before the line that declares it is an error (the value would be empty)."""
        later = {
            name
            for other in stage.instructions
            if other.keyword == "ARG" and other.line > ins.line
            for name, _ in _arg_decls(other, {}, "\\")
        }
        for name in _VAR.findall(ins.text):
            if name not in env and name in later:
                raise ins.error(f"ARG {name} is used before it is defined")

    async def _instruction(
        self, df: Dockerfile, stage: Stage, ins: Instruction, state: State, globals_: Mapping[str, str]
    ) -> AsyncIterator[gw.BuildResponse]:
        env = self._env(state)
        if ins.keyword != "RUN":
            self._check_defined(ins, stage, env)
        if ins.keyword == "ARG":
            self._arg(ins, state, globals_, df.escape)
        elif ins.keyword in instructions.METADATA:
            instructions.apply(ins, state.config, env, df.escape, state.cmd_set)
            state.cmd_set = state.cmd_set or ins.keyword == "CMD"
            state.pending.append(ins.original)
        elif ins.keyword == "WORKDIR":
            async for r in self._workdir(ins, state, env, df.escape):
                yield r
        elif ins.keyword == "RUN":
            async for r in self._run(ins, state):
                yield r
        elif ins.keyword in ("COPY", "ADD"):
            async for r in self._copy(df, ins, state, env):
                yield r
        else:
            raise ins.error("not allowed here")

    def _arg(self, ins: Instruction, state: State, globals_: Mapping[str, str], escape: str) -> None:
        for name, default in _arg_decls(ins, self._env(state), escape):
            if name in self.o.build_args:
                state.args[name] = self.o.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                state.args[name] = default
            elif name in globals_:
                state.args[name] = globals_[name]
        state.pending.append(ins.original)

    def _key(self, state: State, *parts: str) -> str:
        h = hashlib.sha256()
        for part in (state.image.id, state.config.SerializeToString(deterministic=True).hex(), *state.pending, *parts):
            h.update(part.encode() + b"\0")
        return "sha256:" + h.hexdigest()

    async def _cached(self, key: str) -> st.Image | None:
        if self.o.no_cache:
            return None
        try:
            return (await call("storage", self.b.storage.FindBuildCache(st.FindBuildCacheRequest(key=key)))).image
        except NotFound:
            return None

    async def _hit(self, state: State, key: str) -> list[gw.BuildResponse]:
        """On a cache hit for ``key``: the state moved to the image it recorded, and the lines that
        say so; [] on a miss."""
        found = await self._cached(key)
        return [] if found is None else [_status(" ---> Using cache"), self._took(state, found)]

    def _took(self, state: State, image: st.Image) -> gw.BuildResponse:
        """The state after a layer step made (or found) ``image``."""
        state.image = image
        state.config.CopyFrom(image.config)
        state.pending.clear()
        return _status(f" ---> {_short(image.id)}")

    async def _run(self, ins: Instruction, state: State) -> AsyncIterator[gw.BuildResponse]:
        if "mount" in ins.flags or "security" in ins.flags:
            raise Unimplemented(f"Dockerfile line {ins.line}: RUN --mount and --security are not supported yet")
        argv = self._run_argv(ins, state)
        used = {k: v for k, v in state.args.items() if k not in PROXY_ARGS}
        line = (f"|{len(used)} " + " ".join(f"{k}={v}" for k, v in sorted(used.items())) + " " if used else "") + " ".join(argv)
        created_by = f"RUN {line}"
        network = ins.flags.get("network") or self.o.network
        key = self._key(state, created_by, network)
        if hit := await self._hit(state, key):
            for r in hit:
                yield r
            return
        env = [*state.config.env]
        declared = {e.partition("=")[0] for e in env}
        env += [f"{k}={v}" for k, v in state.args.items() if k not in declared]
        env += [f"{k}={v}" for k, v in self.o.build_args.items() if k in PROXY_ARGS and k not in declared]
        config = gw.ContainerConfig(
            image=state.image.id,
            cmd=argv,
            entrypoint=types_pb2.StringList(values=[]),
            env=env,
            working_dir=state.config.working_dir,
            user=state.config.user,
            network="" if network in ("", "default") else network,
            labels={BUILD_LABEL: self.id},
            healthcheck=types_pb2.HealthConfig(test=["NONE"]),
        )
        c = await self.f.create(config)
        try:
            yield _status(f" ---> Running in {c.id[:12]}")
            c = await self.f.start(c.id, hand_over=False)
            async for batch in self.f.logs.follow(c.id, running=c.state == types_pb2.CONTAINER_STATE_RUNNING):
                for out in outputs(batch):
                    yield gw.BuildResponse(output=out.data)
            c = await self.f.wait(c.id)
            if c.exit_code != 0 or c.error:
                detail = c.error or f"returned a non-zero code: {c.exit_code}"
                raise FailedPrecondition(f"The command '{' '.join(argv)}' {detail}")
            image = await self._commit(c.id, state, created_by, key)
        finally:
            await self._discard(c.id)
        yield _status(f"Removing intermediate container {c.id[:12]}")
        yield self._took(state, image)

    def _run_argv(self, ins: Instruction, state: State) -> list[str]:
        if not ins.heredocs:
            if ins.exec is None and not ins.text:
                raise ins.error("RUN requires at least one argument")
            return instructions.command(ins, state.config)
        if (
            ins.text.startswith("<<")
            and len(ins.heredocs) == 1
            and ins.text.split()[0].lstrip("<-\"'").rstrip("\"'") == ins.heredocs[0].name
        ):
            return [*instructions.shell_of(state.config), ins.heredocs[0].content]
        script = ins.text + "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
        return [*instructions.shell_of(state.config), script]

    async def _discard(self, cid: str) -> None:
        """Removes a step's container, whatever happened (also when the build is cancelled)."""
        try:
            await asyncio.shield(self.f.remove(cid, force=True, volumes=True))
        except TeuError as exc:
            log.warning("build_container_left", container=cid[:12], error=exc.message)

    async def _workdir(
        self, ins: Instruction, state: State, env: Mapping[str, str], escape: str
    ) -> AsyncIterator[gw.BuildResponse]:
        """WORKDIR sets the directory and makes it if the image lacks it (a layer only then)."""
        path = instructions.workdir(state.config.working_dir, words.word(ins.text, env, escape))
        state.config.working_dir = path
        key = self._key(state, ins.original)
        if hit := await self._hit(state, key):
            for r in hit:
                yield r
            return
        async with self._snapshot(state.image.id) as snap:
            if await self._is_dir(snap, path):
                req = st.ConfigureImageRequest(
                    image_id=state.image.id, config=state.config, empty_steps=[*state.pending, ins.original], build_key=key
                )
                image = (await call("storage", self.b.storage.ConfigureImage(req))).image
            else:
                await self._copy_into(snap, path)
                image = await self._commit(snap, state, ins.original, key)
        yield self._took(state, image)

    # --- COPY and ADD ---------------------------------------------------------------------

    async def _copy(
        self, df: Dockerfile, ins: Instruction, state: State, env: Mapping[str, str]
    ) -> AsyncIterator[gw.BuildResponse]:
        what = ins.keyword
        for flag in ("parents", "exclude", "checksum", "keep-git-dir"):
            if flag in ins.flags:
                raise Unimplemented(f"Dockerfile line {ins.line}: {what} --{flag} is not supported yet")
        args = list(ins.exec) if ins.exec is not None else words.words(ins.text, env, df.escape)
        if len(args) < 2:
            raise ins.error(
                f"{what} requires at least two arguments, but only one was provided. Destination could not be determined."
            )
        *sources, dest_text = args
        dest = dest_text if dest_text.startswith("/") else posixpath.join(state.config.working_dir or "/", dest_text)
        as_dir = dest_text.endswith("/") or dest_text in (".", "./")
        chown = words.word(ins.flags.get("chown", ""), env, df.escape)
        async with contextlib.AsyncExitStack() as stack:
            found = await self._sources(df, ins, env, sources, stack)
            plan = _plan(found, dest, as_dir)
            if len(plan.items) > 1 and not as_dir:
                raise ins.error(
                    f"When using {what} with more than one source file, the destination must be a directory and end with a /"
                )
            snap = ""
            owner = Owner(mode=_chmod(ins))
            if chown:
                snap = await stack.enter_async_context(self._snapshot(state.image.id))
                owner = await self._owner(snap, chown, owner)
            digest = await self._digest(plan, owner)
            key = self._key(state, ins.original, chown, digest)
            if hit := await self._hit(state, key):
                for r in hit:
                    yield r
                return
            snap = snap or await stack.enter_async_context(self._snapshot(state.image.id))
            if plan.maybe_dir and await self._is_dir(snap, plan.maybe_dir):
                plan = _plan(found, plan.maybe_dir, True)
            tar_path = await self._write(plan, owner, stack)
            await self._copy_into(snap, plan.dest_dir, tar_path)
            image = await self._commit(snap, state, ins.original, key)
        yield self._took(state, image)

    async def _sources(
        self, df: Dockerfile, ins: Instruction, env: Mapping[str, str], sources: list[str], stack: contextlib.AsyncExitStack
    ) -> list[tuple[Context, str]]:
        """Each source as (where it is read, its canonical path there): the context's files, or with
        --from a stage's or an image's (each path read from a snapshot of that image)."""
        ref = ins.flags.get("from")
        if not ref:
            found: list[tuple[Context, str]] = []
            for src in sources:
                if src.startswith("<<"):
                    found.append(await self._heredoc(ins, src, env, stack))
                elif ins.keyword == "ADD" and _URL.match(src):
                    found.append(await self._download(src, stack))
                elif ins.keyword == "ADD":
                    found += [await self._unpacked(self.ctx, path, stack) for path in self.ctx.sources(src, ins.keyword)]
                else:
                    found += [(self.ctx, path) for path in self.ctx.sources(src, ins.keyword)]
            return found
        if ins.keyword == "ADD":
            raise ins.error("ADD does not take --from")
        ref = words.word(ref, env, df.escape)
        index = df.stage_index(ref)
        if index is not None:
            if index not in self.done:
                raise ins.error(f"stage {ref} is not built before this one")
            image_id = self.done[index].image.id
        else:
            image_id = (await self._image(ref, False)).id
        snap = await stack.enter_async_context(self._snapshot(image_id))
        found = []
        for src in sources:
            if any(c in src for c in "*?["):
                raise Unimplemented(f"Dockerfile line {ins.line}: COPY --from with a wildcard is not supported yet")
            path = posixpath.normpath("/" + src)
            req = st.CopyFromRequest(key=snap, path=path)
            try:
                tar = await spool(self.folder, (p.chunk async for p in stream("storage", self.b.storage.CopyFrom(req))))
            except NotFound as exc:
                raise NotFound(f"COPY --from={ref} failed: {src}: no such file or directory in {ref}") from exc
            stack.callback(tar.unlink, missing_ok=True)
            where = await asyncio.to_thread(Context, tar, "", False)
            stack.callback(where.close)
            found.append((where, posixpath.basename(path)))
        return found

    async def _heredoc(
        self, ins: Instruction, src: str, env: Mapping[str, str], stack: contextlib.AsyncExitStack
    ) -> tuple[Context, str]:
        """``COPY <<EOF dest``: a file of the heredoc's text (variables substituted unless its name was quoted)."""
        name = src[2:].lstrip("-")
        doc = next((h for h in ins.heredocs if h.name == name), None)
        if doc is None:
            raise ins.error(f"no heredoc named {name}")
        text = doc.content
        if doc.expand:  # only the variables: quotes and backslashes stay as written
            text = _SUBSTITUTION.sub(lambda m: words.word(m.group(0), env), text)
        return await self._one_file(name, io.BytesIO(text.encode()), 0o644, stack)

    async def _download(self, url: str, stack: contextlib.AsyncExitStack) -> tuple[Context, str]:
        """``ADD URL dest``: the file at an https URL (or http on this machine), named after its path, mode 0600."""
        fd, name = tempfile.mkstemp(prefix="url-", dir=self.folder)
        path = Path(name)
        stack.callback(path.unlink, missing_ok=True)
        with os.fdopen(fd, "wb") as f:

            def write(chunk: bytes) -> None:
                f.write(chunk)

            await asyncio.to_thread(fetch.download, url, write)
        base = posixpath.basename(urllib.parse.urlsplit(url).path) or "index.html"
        with open(path, "rb") as body:
            return await self._one_file(base, body, 0o600, stack)

    async def _one_file(self, name: str, data: IO[bytes], mode: int, stack: contextlib.AsyncExitStack) -> tuple[Context, str]:
        """A context of one file ``name`` holding ``data``."""
        fd, tar_name = tempfile.mkstemp(prefix="file-", suffix=".tar", dir=self.folder)
        tar_path = Path(tar_name)
        stack.callback(tar_path.unlink, missing_ok=True)

        def write() -> None:
            data.seek(0, os.SEEK_END)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = data.tell(), mode, int(time.time())
            data.seek(0)
            with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
                tar.addfile(info, data)

        await asyncio.to_thread(write)
        where = await asyncio.to_thread(Context, tar_path, "")
        stack.callback(where.close)
        return where, name

    async def _unpacked(self, where: Context, path: str, stack: contextlib.AsyncExitStack) -> tuple[Context, str]:
        """ADD's source: a tar archive (plain, gzip, bzip2 or xz) as its content, else itself."""
        if where.is_dir(path) or not await asyncio.to_thread(where.is_archive, path):
            return where, path
        fd, name = tempfile.mkstemp(prefix="add-", suffix=".tar", dir=self.folder)
        os.close(fd)
        tar = Path(name)
        stack.callback(tar.unlink, missing_ok=True)
        await asyncio.to_thread(where.save, path, tar)
        await asyncio.to_thread(unpack, tar)
        archive = await asyncio.to_thread(Context, tar, "", False)
        stack.callback(archive.close)
        return archive, ""

    async def _digest(self, plan: _Plan, owner: Owner) -> str:
        """The content digest of what ``plan`` copies (the tar written nowhere: a cache hit needs no file)."""
        return await asyncio.to_thread(content_digest, _entries(plan), owner)

    async def _write(self, plan: _Plan, owner: Owner, stack: contextlib.AsyncExitStack) -> Path:
        """The tar of what ``plan`` copies, in a file removed with ``stack``."""
        fd, name = tempfile.mkstemp(prefix="copy-", suffix=".tar", dir=self.folder)
        path = Path(name)
        stack.callback(path.unlink, missing_ok=True)

        def write() -> None:
            with os.fdopen(fd, "wb") as out:
                write_copy(_entries(plan), out, owner)

        await asyncio.to_thread(write)
        return path

    async def _owner(self, snap: str, chown: str, owner: Owner) -> Owner:
        """``--chown user[:group]``: numbers as they are, names from the image's /etc/passwd and
        /etc/group (without a group, the user's own)."""
        user, _, group = chown.partition(":")
        account = None if user.isdigit() else await self._lookup(snap, "/etc/passwd", user, 4)
        uid = int(user) if account is None else int(account[2])
        if group:
            gid = int(group) if group.isdigit() else int((await self._lookup(snap, "/etc/group", group, 3))[2])
        else:
            gid = uid if account is None else int(account[3])
        return Owner(uid, gid, owner.mode)

    async def _lookup(self, snap: str, path: str, name: str, numbers: int) -> list[str]:
        """The line of ``path`` (passwd or group) naming ``name``, its columns 2 to ``numbers``-1 numbers."""
        text = await self._read(snap, path)
        for line in text.splitlines():
            cols = line.split(":")
            if len(cols) >= numbers and cols[0] == name and all(c.isdigit() for c in cols[2:numbers]):
                return cols
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: no {name} in the image's {path}")

    async def _read(self, snap: str, path: str) -> str:
        data = b"".join(
            [part.chunk async for part in stream("storage", self.b.storage.CopyFrom(st.CopyFromRequest(key=snap, path=path)))]
        )
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            member = tar.next()
            f = tar.extractfile(member) if member is not None else None
            return f.read().decode(errors="replace") if f is not None else ""

    # --- snapshots ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _snapshot(self, image_id: str) -> AsyncIterator[str]:
        """A snapshot of ``image_id`` for one step, removed after it."""
        key = secrets.token_hex(32)
        marker = self.folder / SNAPSHOTS / key  # what a gateway that dies now leaves to its next start
        marker.touch()
        try:
            await call("storage", self.b.storage.PrepareSnapshot(st.PrepareSnapshotRequest(key=key, image_id=image_id)))
            yield key
        finally:
            try:
                await asyncio.shield(call("storage", self.b.storage.RemoveSnapshot(st.RemoveSnapshotRequest(key=key))))
                marker.unlink()
            except TeuError as exc:
                log.warning("build_snapshot_left", key=key[:12], error=exc.message)

    async def _is_dir(self, snap: str, path: str) -> bool:
        """Whether ``path`` is a directory in the snapshot (reading only the head of its tar)."""
        head = b""
        try:
            parts = cast(
                AsyncGenerator[st.CopyFromResponse, None],
                stream("storage", self.b.storage.CopyFrom(st.CopyFromRequest(key=snap, path=path))),
            )
            async with contextlib.aclosing(parts):
                async for part in parts:
                    head += part.chunk
                    if len(head) >= 4096:
                        break
        except NotFound:
            return False
        try:
            with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
                first = tar.next()
        except tarfile.TarError:
            return False
        return first is not None and first.isdir()

    async def _copy_into(self, snap: str, dest_dir: str, tar_path: Path | None = None) -> None:
        """Extracts the tar at ``tar_path`` into ``dest_dir`` of the snapshot, made if missing (without
        a tar: only made, as WORKDIR does)."""

        async def chunks() -> AsyncIterator[st.CopyToRequest]:
            yield st.CopyToRequest(header=st.CopyToHeader(key=snap, path=dest_dir or "/", make_parents=True))
            if tar_path is None:
                yield st.CopyToRequest(chunk=EMPTY_TAR)
                return
            with open(tar_path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield st.CopyToRequest(chunk=chunk)

        await call("storage", self.b.storage.CopyTo(chunks()))

    async def _commit(self, snapshot: str, state: State, created_by: str, key: str) -> st.Image:
        """Commits ``snapshot`` (a step's container or snapshot) as the step's image, recorded for ``key``."""
        req = st.CommitRequest(key=snapshot, config=state.config, created_by=created_by, empty_steps=state.pending, build_key=key)
        return (await call("storage", self.b.storage.Commit(req))).image


@dataclass(frozen=True)
class _Plan:
    """What a COPY puts where: (source, canonical path, name under ``dest_dir``; "" for a
    directory's content) each; ``maybe_dir`` is set when one file goes to a path that, being a
    directory in the image, would take it under its own name instead."""

    items: list[tuple[Context, str, str]]
    dest_dir: str
    maybe_dir: str


def _entries(plan: _Plan) -> Iterator[Entry]:
    for where, src, under in plan.items:
        yield from where.entries(src, under)


def _full_ref(tag: str) -> str:
    """``tag`` as storage records references (":latest" added when it has no tag)."""
    return tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest"


def _plan(found: list[tuple[Context, str]], dest: str, as_dir: bool) -> _Plan:
    items = [(where, path, "" if where.is_dir(path) else posixpath.basename(path)) for where, path in found]
    dest = posixpath.normpath(dest)
    if len(items) == 1 and items[0][2] and not as_dir:
        return _Plan([(items[0][0], items[0][1], posixpath.basename(dest))], posixpath.dirname(dest), dest)
    return _Plan(items, dest, "")


def _arg_decls(ins: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str | None]]:
    """An ARG's ``name[=default]`` declarations, defaults substituted."""
    out: list[tuple[str, str | None]] = []
    for w in words.words(ins.text, env, escape):
        name, eq, default = w.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ins.error(f"invalid ARG name {name!r}")
        out.append((name, default if eq else None))
    return out


def _chmod(ins: Instruction) -> int | None:
    text = ins.flags.get("chmod")
    if text is None:
        return None
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise ins.error(f"invalid --chmod {text!r}: want an octal mode such as 755")
    return int(text, 8)


def _registry(ref: str) -> str:
    first = ref.split("/", 1)[0]
    return first if "/" in ref and ("." in first or ":" in first or first == "localhost") else "docker.io"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _status(text: str) -> gw.BuildResponse:
    return gw.BuildResponse(status=text)


async def build(flows: Flows, folder: Path, requests: AsyncIterator[gw.BuildRequest]) -> AsyncIterator[gw.BuildResponse]:
    """The Build RPC: options, context chunks in; progress, output and the image out. The context's
    spool and every temporary file go when the build ends, however it ends."""
    options: gw.BuildOptions = (await first_message(requests, "options")).options
    _check(options)

    async def chunks() -> AsyncIterator[bytes]:
        async for part in requests:
            if part.WhichOneof("part") != "chunk":
                raise InvalidArgument("only context chunks may follow the build options")
            yield part.chunk

    path = await spool(folder, chunks())
    context: Context | None = None
    try:
        context = await asyncio.to_thread(_indexed, path)
        size = path.stat().st_size
        yield _status(f"Sending build context to Teu  {_human(size)}")
        async for r in Builder(flows, context, options, folder).run():
            yield r
    finally:
        if context is not None:
            context.close()
        path.unlink(missing_ok=True)


def _indexed(path: Path) -> Context:
    unpack(path)
    return Context(path)


def _check(o: gw.BuildOptions) -> None:
    limits.check_count(o.tags, 64, "tags")
    for tag in o.tags:
        limits.check_length(tag, limits.MAX_REF, "tag")
    limits.check_length(o.dockerfile, limits.MAX_PATH, "dockerfile")
    limits.check_count(o.build_args, 1000, "build_args")
    limits.check_labels(o.labels)
    if o.network not in ("", "default", "bridge", "host", "none"):
        raise InvalidArgument(f"invalid build network {limits.shown(o.network)}: want default, bridge, host or none")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{size}B"
        value /= 1000
    return f"{size}B"
