"""A QEMU guest agent on a unix socket, played by the host: for fast tests of `soak.vm.qga`'s logic.

It speaks qemu-ga 7.2's wire protocol as observed on the real agent (tests/qga/test_debian.py
boots the real one): replies echo the command's ``id``; a ``0xFF`` byte is answered with a
parse error; ``guest-sync-delimited``'s reply starts with ``0xFF``; ``guest-shutdown``
answers only a failure. Its "guest" is this host: ``guest-exec`` runs ``/bin/sh`` here (with
``SOAK_QGA_DIR`` pointing into the test's directory), ``guest-file-*`` read files here, with
``/proc/sys/kernel/random/boot_id`` redirected to a file the test controls. ``restart``
forgets handles and processes as a rebooted guest's agent would; ``mute`` stops answering
(a paused guest).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

ALL_COMMANDS = ("guest-sync-delimited", "guest-sync", "guest-info", "guest-ping", "guest-get-time",
                "guest-get-osinfo", "guest-get-cpustats", "guest-get-vcpus", "guest-file-open",
                "guest-file-seek", "guest-file-read", "guest-file-close", "guest-exec", "guest-exec-status",
                "guest-shutdown")


class FakeQga:
    def __init__(self, socket_path: Path, workdir: Path, *, disabled: tuple[str, ...] = (),
                 shutdown_error: str | None = None) -> None:
        self.socket_path = socket_path
        self.workdir = workdir
        self.boot_id = workdir / "boot_id"
        self.boot_id.write_text("11111111-2222-3333-4444-555555555555\n")
        self.disabled = set(disabled)
        self.shutdown_error = shutdown_error
        self.mute = False
        self.calls: list[str] = []
        self.shutdowns = 0
        self._handles: dict[int, Any] = {}
        self._next_handle = 1000
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._outputs: dict[int, bytes] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, path: Path | None = None) -> None:
        """Listen on ``path`` too (a migration's destination reaches the same guest)."""
        self._servers.append(await asyncio.start_unix_server(self._client, path=str(path or self.socket_path)))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        for task in self._tasks:
            task.cancel()

    def restart(self) -> None:
        """A new agent (the guest rebooted): no open files, no processes it knows of."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        self._procs.clear()
        self._outputs.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while line := await reader.readline():
                if line.startswith(b"\xff"):
                    writer.write(b'{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n')
                    line = line.lstrip(b"\xff")
                message = json.loads(line)
                while self.mute:
                    await asyncio.sleep(0.05)
                reply = await self._execute(message["execute"], message.get("arguments") or {})
                if reply is None:
                    continue
                if "id" in message:
                    reply["id"] = message["id"]
                prefix = b"\xff" if message["execute"] == "guest-sync-delimited" else b""
                writer.write(prefix + json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _execute(self, command: str, args: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append(command)
        if command not in ALL_COMMANDS:
            return {"error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}}
        if command in self.disabled:
            return {"error": {"class": "CommandNotFound", "desc": f"Command {command} has been disabled"}}
        try:
            return {"return": await getattr(self, "_" + command.replace("-", "_"))(args)}
        except _Refused as exc:
            return {"error": {"class": "GenericError", "desc": str(exc)}}
        except _NoAnswer:
            return None

    async def _guest_sync_delimited(self, args: dict[str, Any]) -> Any:
        return args["id"]

    async def _guest_info(self, args: dict[str, Any]) -> Any:
        return {"version": "7.2.22", "supported_commands": [
            {"name": c, "enabled": c not in self.disabled, "success-response": c != "guest-shutdown"}
            for c in ALL_COMMANDS]}

    async def _guest_ping(self, args: dict[str, Any]) -> Any:
        return {}

    async def _guest_get_time(self, args: dict[str, Any]) -> Any:
        return 1_796_000_000_000_000_000

    async def _guest_get_osinfo(self, args: dict[str, Any]) -> Any:
        return {"kernel-release": "6.1.0-fake-amd64", "id": "debian"}

    async def _guest_get_cpustats(self, args: dict[str, Any]) -> Any:
        return [{"cpu": 0, "type": "linux", "user": 1}, {"cpu": 1, "type": "linux", "user": 2}]

    async def _guest_get_vcpus(self, args: dict[str, Any]) -> Any:
        return [{"logical-id": 0, "online": True}, {"logical-id": 1, "online": True}, {"logical-id": 2, "online": False}]

    async def _guest_file_open(self, args: dict[str, Any]) -> Any:
        path = self.boot_id if args["path"] == "/proc/sys/kernel/random/boot_id" else Path(args["path"])
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = path.open("rb")
        return handle

    def _handle(self, args: dict[str, Any]) -> Any:
        try:
            return self._handles[args["handle"]]
        except KeyError:
            raise _Refused(f"handle '{args['handle']}' has not been found") from None

    async def _guest_file_seek(self, args: dict[str, Any]) -> Any:
        self._handle(args).seek(args["offset"])
        return {"position": args["offset"], "eof": False}

    async def _guest_file_read(self, args: dict[str, Any]) -> Any:
        data = self._handle(args).read(args.get("count", 4096))
        return {"count": len(data), "buf-b64": base64.b64encode(data).decode(), "eof": not data}

    async def _guest_file_close(self, args: dict[str, Any]) -> Any:
        self._handles.pop(args["handle"]).close()
        return {}

    async def _guest_exec(self, args: dict[str, Any]) -> Any:
        env = {**os.environ, "SOAK_QGA_DIR": str(self.workdir)}
        proc = await asyncio.create_subprocess_exec(args["path"], *args.get("arg", []), env=env,
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self._procs[proc.pid] = proc
        task = asyncio.create_task(self._collect(proc))
        self._tasks.add(task)
        return {"pid": proc.pid}

    async def _collect(self, proc: asyncio.subprocess.Process) -> None:
        out, _ = await proc.communicate()
        self._outputs[proc.pid] = out

    async def _guest_exec_status(self, args: dict[str, Any]) -> Any:
        proc = self._procs.get(args["pid"])
        if proc is None:
            raise _Refused("Invalid parameter 'pid'")
        if proc.returncode is None or args["pid"] not in self._outputs:
            return {"exited": False}
        del self._procs[args["pid"]]
        out = self._outputs.pop(args["pid"])
        status: dict[str, Any] = {"exited": True, "out-data": base64.b64encode(out).decode(), "out-truncated": False}
        if proc.returncode < 0:
            status["signal"] = -proc.returncode
        else:
            status["exitcode"] = proc.returncode
        return status

    async def _guest_shutdown(self, args: dict[str, Any]) -> Any:
        self.shutdowns += 1
        if self.shutdown_error:
            raise _Refused(self.shutdown_error)
        raise _NoAnswer


class _Refused(Exception):
    pass


class _NoAnswer(Exception):
    pass
