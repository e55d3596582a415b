"""Where code nodes run: never in the server process.

`LocalProcessSandbox` starts one `python -I -S` per call, in a new session, with:
- an empty environment and an empty temporary working folder (removed afterwards);
- resource limits: address space, CPU seconds, open files, size of files written, no core;
- no network: a new, empty network namespace when the kernel lets us create one (root, or
  unprivileged user namespaces); where it cannot, the run is refused unless the operator set
  `require_network_isolation = false`, and then only the audit hook below stands in the way;
- when Parley runs as root, the user `nobody` (dropped to inside the child after it has
  loaded the standard modules a code node may import, PRELOADED below: the interpreter may
  sit where `nobody` cannot read), who can write only to the working folder and
  world-writable places;
- a CPython audit hook installed before the user's code, refusing sockets, subprocesses,
  ctypes and file writes outside the working folder (defence in depth, not the boundary);
- a wall-clock limit, after which the whole process group is killed.

For hostile multi-tenant code, run an external sandbox service (`HTTPSandbox`, the API shape
of Dify's sandbox) where isolation is a container's or a VM's job.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import os
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

RESULT_LIMIT = 1_000_000
"""Bytes of result a program may hand back."""
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NOBODY = 65534


class SandboxError(Exception):
    """The program failed, was stopped, or could not be run; the message says which."""


@dataclass(slots=True)
class SandboxResult:
    outputs: dict[str, Any]
    stdout: str = ""


class Sandbox(Protocol):
    async def run(self, code: str, inputs: dict[str, Any], *, timeout: float) -> SandboxResult:
        """Runs `code`, which defines `main(**inputs)` returning a dict."""
        ...


# The child's bootstrap: reads {"code", "inputs"} on stdin, installs the audit hook, runs
# main(**inputs), writes {"outputs", "stdout"} or {"error"} on the saved stdout.
PRELOADED = (
    "base64", "collections", "copy", "csv", "datetime", "decimal", "fractions", "functools", "hashlib", "heapq",
    "html", "itertools", "json", "math", "operator", "random", "re", "statistics", "string", "textwrap", "time",
    "typing", "unicodedata", "urllib.parse", "uuid", "zoneinfo",
)
"""Standard modules loaded before the program starts: the ones a code node can import."""

_BOOTSTRAP = r'''
import importlib, io, json, os, sys, traceback
request = json.loads(sys.stdin.buffer.read())
result_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
root = os.path.realpath(os.getcwd())
for name in request["preload"]:
    importlib.import_module(name)
if request["drop"]:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
REFUSED = {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
           "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.chdir", "os.symlink",
           "os.link", "os.chmod", "os.chown", "os.setxattr", "os.removexattr", "sys.setprofile", "sys.settrace",
           "mmap.__new__", "resource.setrlimit", "pty.spawn", "os.truncate"}
PATHS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1),
         "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,)}
def inside(path):
    if isinstance(path, int):
        return True
    real = os.path.realpath(os.fsdecode(path))
    return real == root or real.startswith(root + os.sep)
def hook(event, args):
    if event in REFUSED:
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE)
        if writing and not inside(path):
            raise PermissionError(f"writing outside the working folder is not allowed: {path}")
    elif event in PATHS:
        for index in PATHS[event]:
            if index < len(args) and not inside(args[index]):
                raise PermissionError(f"{event} outside the working folder is not allowed: {args[index]}")
sys.addaudithook(hook)
captured = io.StringIO()
sys.stdout = captured
try:
    namespace = {"__name__": "__sandbox__"}
    exec(compile(request["code"], "<code node>", "exec"), namespace)
    main = namespace.get("main")
    if not callable(main):
        raise NameError("the code must define main(...)")
    outputs = main(**request["inputs"])
    if not isinstance(outputs, dict):
        raise TypeError(f"main() must return a dict, not {type(outputs).__name__}")
    reply = {"outputs": outputs, "stdout": captured.getvalue()[-10000:]}
    text = json.dumps(reply, ensure_ascii=False, default=str)
except BaseException as exc:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = json.dumps({"error": "".join(l for l in lines if "<code node>" in l or not l.startswith("  File"))[-2000:]})
result_out.write(text)
result_out.flush()
os._exit(0)
'''


def _unshare(flags: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


def network_isolation_available() -> bool:
    """Whether a child can get its own empty network namespace here (tried in a child)."""
    pid = os.fork()
    if pid == 0:
        ok = _unshare(CLONE_NEWNET) or _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


class LocalProcessSandbox:
    def __init__(
        self, *, memory_mb: int = 512, max_open_files: int = 64, max_file_bytes: int = 1_000_000,
        require_network_isolation: bool = True, python: str = sys.executable,
    ) -> None:
        self.memory_bytes = memory_mb * 1024 * 1024
        self.max_open_files = max_open_files
        self.max_file_bytes = max_file_bytes
        self.python = python
        self.require_network_isolation = require_network_isolation
        self._isolation: bool | None = None

    def _limits(self, cpu_seconds: int, isolate: bool) -> None:
        """Runs in the child between fork and exec."""
        if isolate and not (_unshare(CLONE_NEWNET) or _unshare(CLONE_NEWUSER | CLONE_NEWNET)):
            os._exit(97)
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_bytes, self.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    async def run(self, code: str, inputs: dict[str, Any], *, timeout: float) -> SandboxResult:
        if self._isolation is None:
            self._isolation = await asyncio.to_thread(network_isolation_available)
        if not self._isolation and self.require_network_isolation:
            raise SandboxError("code nodes need a network namespace, which this machine does not allow "
                               "(set require_network_isolation = false to run them with the audit hook only)")
        folder = tempfile.mkdtemp(prefix="parley-code-")
        as_root = os.geteuid() == 0
        if as_root:
            os.chown(folder, NOBODY, NOBODY)
        cpu = max(1, int(timeout + 0.999))
        try:
            process = await asyncio.create_subprocess_exec(
                self.python, "-I", "-S", "-X", "utf8", "-c", _BOOTSTRAP,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                cwd=folder, env={}, start_new_session=True, close_fds=True,
                preexec_fn=lambda: self._limits(cpu, self._isolation or False),
            )
            request = orjson.dumps({"code": code, "inputs": inputs, "preload": PRELOADED, "drop": as_root}, default=str)
            try:
                raw = await asyncio.wait_for(self._exchange(process, request), timeout)
            except asyncio.TimeoutError:
                _kill(process)
                await process.wait()
                raise SandboxError(f"stopped after {timeout:g} s (wall-clock limit)") from None
            except asyncio.CancelledError:
                _kill(process)
                raise
            status = await process.wait()
            return _result(raw, status, cpu)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    async def _exchange(process: asyncio.subprocess.Process, request: bytes) -> bytes:
        assert process.stdin and process.stdout
        try:
            process.stdin.write(request)
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = bytearray()
        while chunk := await process.stdout.read(65536):
            if len(data) <= RESULT_LIMIT:
                data += chunk
        return bytes(data)


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _result(raw: bytes, status: int, cpu: int) -> SandboxResult:
    if status == 97:
        raise SandboxError("could not isolate the program from the network")
    if status < 0:
        reason = {signal.SIGXCPU: f"CPU limit ({cpu} s) reached", signal.SIGKILL: "killed",
                  signal.SIGXFSZ: "file size limit reached", signal.SIGSEGV: "crashed"}.get(-status, f"signal {-status}")
        raise SandboxError(f"the program was stopped: {reason}")
    if len(raw) > RESULT_LIMIT:
        raise SandboxError(f"the result is over {RESULT_LIMIT} bytes")
    if not raw:
        raise SandboxError(f"the program ended (status {status}) without a result (out of memory?)")
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SandboxError("the program's result is not JSON") from None
    if "error" in reply:
        raise SandboxError(str(reply["error"]).strip())
    return SandboxResult(outputs=reply.get("outputs") or {}, stdout=reply.get("stdout", ""))


_MARK = "<<PARLEY-RESULT>>"


class HTTPSandbox:
    """An external sandbox service with the API of Dify's sandbox: POST /v1/sandbox/run with
    `X-Api-Key`, body {language, code, preload, enable_network}, answer {code, message, data:
    {stdout, error}}. The user's code is wrapped so that main's result comes back in stdout."""

    def __init__(self, url: str, api_key: str = "") -> None:
        self.url = url.rstrip("/") + "/v1/sandbox/run"
        self.api_key = api_key

    async def run(self, code: str, inputs: dict[str, Any], *, timeout: float) -> SandboxResult:
        encoded = base64.b64encode(orjson.dumps(inputs, default=str)).decode()
        program = (
            f"{code}\n\nimport base64 as _b64, json as _json\n"
            f"_out = main(**_json.loads(_b64.b64decode({encoded!r})))\n"
            f"print({_MARK!r} + _json.dumps(_out, ensure_ascii=False, default=str) + {_MARK!r})\n"
        )
        body = {"language": "python3", "code": program, "preload": "", "enable_network": False}
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(self.url, json=body, headers={"X-Api-Key": self.api_key})
        except httpx.TimeoutException:
            raise SandboxError(f"the sandbox service did not answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise SandboxError(f"the sandbox service is unreachable: {exc}") from None
        if response.status_code != 200:
            raise SandboxError(f"the sandbox service answered HTTP {response.status_code}")
        reply = response.json()
        data = reply.get("data") or {}
        if reply.get("code") not in (0, None) or data.get("error"):
            raise SandboxError(str(data.get("error") or reply.get("message") or "the sandbox service failed"))
        stdout = str(data.get("stdout", ""))
        parts = stdout.split(_MARK)
        if len(parts) < 3:
            raise SandboxError("the sandbox service's output holds no result")
        outputs = orjson.loads(parts[1])
        if not isinstance(outputs, dict):
            raise SandboxError("main() must return a dict")
        return SandboxResult(outputs=outputs, stdout=parts[0][-10000:])
