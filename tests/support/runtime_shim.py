"""A stand-in for the container runtimes this host cannot have: docker (the engine), Apptainer, Singularity, Shifter.

``install(bin_dir, state_dir)`` puts a wrapper named after each runtime in
``bin_dir``; with that directory first on PATH the endpoint's command lines
reach this program instead. Each call is appended to ``calls.jsonl`` in the
state directory (``$CE_SHIM_DIR``, else the wrapper's own directory) as one
JSON line, then the command line is parsed as that runtime parses it and the
command runs on this host: the image's files are the host's, its paths are the
same, and the command sees ``CE_SHIM_RUNTIME`` and ``CE_SHIM_IMAGE`` so that a
task can tell where it ran.

The shim refuses what the runtime refuses, so that a command line only it
accepts cannot pass a test:

* options the runtime does not have (checked against ``docker <cmd> --help``
  of a real client, Apptainer's man pages, Shifter's getopt table);
* docker: a container gets only stdin, stdout and stderr (the daemon starts
  it, not the client), a clean environment (``--env`` names what comes in),
  ``/`` as its directory, and it outlives a client killed with SIGKILL, as
  ``docker ps`` and ``docker rm`` show (kept in ``containers/`` of the state
  directory); a signal the client gets reaches the container (``--sig-proxy``);
* Apptainer/Singularity: the image and every bind source must exist; the
  command runs in the caller's process tree with its descriptors and
  environment (not PATH), as those runtimes do;
* Shifter: the image is ``TYPE:TAG``; bind destinations under ``/etc``,
  ``/var``, ``/opt/udiImage`` or ``/opt`` itself are refused, as by
  validateVolumeMap_userRequest. (Real Shifter also refuses to run as root;
  the shim does not, since the tests here run as root.)

With ``CE_SHIM_DRY_RUN=1`` it checks and records a call and runs nothing, so
that its verdict on a command line can be compared with a real client's
(tests/unit/test_runtime_command_lines.py does, for docker). Stdlib only: the
wrappers run it with the interpreter that installed them.
"""

import fcntl
import grp
import json
import os
import pwd
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

RUNTIMES = ("docker", "apptainer", "singularity", "shifter")
STATE_ENV = "CE_SHIM_DIR"
DRY_RUN_ENV = "CE_SHIM_DRY_RUN"  # =1: check and record the call, run nothing (to compare with a real client)
# What a container's PATH is when its image sets none: the host's PATH does not cross into one.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Refused(Exception):
    """The runtime rejects the call: its message (stderr) and exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# --- installing and reading back (used by the tests) ---------------------------

def install(bin_dir: Path, state_dir: Path, names: tuple[str, ...] = RUNTIMES) -> dict[str, str]:
    """Wrappers named after the runtimes in ``bin_dir``; returns the environment that puts them first on PATH."""
    bin_dir, state_dir = bin_dir.resolve(), state_dir.resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        wrapper = bin_dir / name
        # -I: the endpoint's PYTHON* variables must not change the shim; "$0" tells it its name and directory.
        wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' -I '{Path(__file__).resolve()}' \"$0\" \"$@\"\n")
        wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", STATE_ENV: str(state_dir)}


def calls(state_dir: Path, runtime: str | None = None) -> list[list[str]]:
    """The argv of each call so far (the runtime's name first), oldest first."""
    log = state_dir / "calls.jsonl"
    if not log.exists():
        return []
    found = [json.loads(line)["argv"] for line in log.read_text().splitlines() if line.strip()]
    return [argv for argv in found if runtime is None or argv[0] == runtime]


def docker_containers(state_dir: Path) -> list[dict]:
    """The docker containers the shim keeps (running or exited, not yet removed), with a ``running`` flag."""
    return [{**record, "running": _running(record)} for record in _records(state_dir)]


def live_processes(state_dir: Path) -> list[int]:
    """Processes that run for this state directory: a docker client, or a command the shim started, and its
    children (they inherit the markers)."""
    marker = f"{STATE_ENV}={state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ and (any(v.startswith(b"CE_SHIM_RUNTIME=") for v in environ)
                                  or Path(__file__).name.encode() in cmdline):
            found.append(int(entry.name))
    return found


# --- option parsing ---------------------------------------------------------------

def _spec(values: str, flags: str) -> dict[str, tuple[str, bool]]:
    """Option spellings -> (canonical name, takes a value), from space-separated 'long|s' words."""
    table = {}
    for words, takes in ((values, True), (flags, False)):
        for word in words.split():
            long, _, short = word.partition("|")
            table[f"--{long}"] = (long, takes)
            if short:
                table[f"-{short}"] = (long, takes)
    return table


def _parse(args: list[str], spec: dict[str, tuple[str, bool]], unknown, interspersed: bool):
    """pflag's syntax (docker, Apptainer): --name=value, --name value, -n value, -nvalue, -abc; options stop at
    '--', and at the first positional argument unless ``interspersed``. Returns ({name: [values]}, positionals)."""
    found: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                rest += args[i:]
                break
            rest.append(arg)
            i += 1
            continue
        if arg.startswith("--"):
            option, eq, value = arg.partition("=")
            if option not in spec:
                raise unknown(f"unknown flag: {option}")
            name, takes = spec[option]
            if takes and not eq:
                if i + 1 >= len(args):
                    raise unknown(f"flag needs an argument: {option}")
                i += 1
                value = args[i]
            elif not takes:
                value = value if eq else "true"
            found.setdefault(name, []).append(value)
        else:
            j = 1
            while j < len(arg):
                option = f"-{arg[j]}"
                if option not in spec:
                    raise unknown(f"unknown shorthand flag: {arg[j]!r} in {arg}")
                name, takes = spec[option]
                if takes:
                    value = arg[j + 1:].removeprefix("=")
                    if not value:
                        if i + 1 >= len(args):
                            raise unknown(f"flag needs an argument: {option!r} in {arg}")
                        i += 1
                        value = args[i]
                    found.setdefault(name, []).append(value)
                    break
                found.setdefault(name, []).append("true")
                j += 1
        i += 1
    return found, rest


def _true(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() not in ("false", "0")


# --- docker -------------------------------------------------------------------------

# From `docker run --help` (28.x): the options the endpoint uses and the common ones an operator adds.
DOCKER_RUN = _spec(
    "name label|l volume|v env|e env-file user|u workdir|w network net memory|m cpus gpus entrypoint hostname|h "
    "mount shm-size ipc pid ulimit cap-add cap-drop security-opt device tmpfs add-host platform pull "
    "stop-signal stop-timeout label-file userns group-add memory-swap cpuset-cpus runtime log-driver log-opt "
    "restart",
    "rm init detach|d interactive|i tty|t privileged read-only sig-proxy no-healthcheck")
DOCKER_PS = _spec("filter|f format last|n", "all|a quiet|q no-trunc latest|l size|s")
DOCKER_RM = _spec("", "force|f link|l volumes|v")


def _docker_unknown(command: str):
    def refuse(problem: str) -> Refused:
        return Refused(f"{problem}\n\nUsage:  docker {command} [OPTIONS] ...\n\n"
                       f"Run 'docker {command} --help' for more information", 125)
    return refuse


def docker(args: list[str], state: Path) -> int:
    if not args or args[0].startswith("-"):
        raise Refused("the shim handles `docker run`, `docker ps` and `docker rm`, without global options", 125)
    command, args = args[0], args[1:]
    if command == "run":
        return _docker_run(args, state)
    if command == "ps":
        return _docker_ps(args, state)
    if command == "rm":
        return _docker_rm(args, state)
    raise Refused(f"docker: unknown command: docker {command}\n\nRun 'docker --help' for more information", 1)


def _docker_env(opts: dict[str, list[str]], state: Path, image: str, cid: str, home: str) -> dict[str, str]:
    """A container's environment: the image's defaults and what --env names or sets; nothing else of the client's."""
    env = {"PATH": IMAGE_PATH, "HOSTNAME": socket.gethostname(), "HOME": home}
    for path in opts.get("env-file", []):
        for line in Path(path).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                _docker_set(env, line.strip())
    for item in opts.get("env", []):
        _docker_set(env, item)
    env.update(CE_SHIM_RUNTIME="docker", CE_SHIM_IMAGE=image, CE_SHIM_CONTAINER=cid, **{STATE_ENV: str(state)})
    return env


def _docker_set(env: dict[str, str], item: str) -> None:
    key, eq, value = item.partition("=")
    if eq:
        env[key] = value
    elif key in os.environ:  # --env KEY: the client's value, if it has one
        env[key] = os.environ[key]


def _docker_user(spec: str) -> tuple[int, int, str]:
    """uid, gid and home of --user NAME|UID[:GROUP|GID] (names looked up on the host, which is the image here)."""
    user, _, group = spec.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if not user.isdigit():
            raise Refused(f"docker: Error response from daemon: unable to find user {user}: no matching entries in "
                          "passwd file", 126) from None
        entry = None
    uid = entry.pw_uid if entry else int(user)
    if not group:
        gid = entry.pw_gid if entry else 0
    else:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid, entry.pw_dir if entry else "/"


def _docker_run(args: list[str], state: Path) -> int:
    opts, rest = _parse(args, DOCKER_RUN, _docker_unknown("run"), interspersed=False)
    if not rest:
        raise Refused("\"docker run\" requires at least 1 argument.\nSee 'docker run --help'.", 125)
    image, command = rest[0], rest[1:]
    if _dry_run():  # (what follows is the daemon's part: a client that parsed this far would send it there)
        return 0
    if not command:
        raise Refused(f"shim: {image} has no default command here: give one", 125)
    uid, gid, home = _docker_user(opts["user"][-1]) if "user" in opts else (os.getuid(), os.getgid(),
                                                                            pwd.getpwuid(os.getuid()).pw_dir)
    if (uid, gid) != (os.getuid(), os.getgid()) and os.geteuid() != 0:
        raise Refused(f"shim: cannot run a container as {uid}:{gid} without root", 126)
    cid = secrets.token_hex(32)
    name = opts.get("name", [f"shim_{cid[:8]}"])[-1]
    labels = dict(item.partition("=")[::2] for item in opts.get("label", []))
    env = _docker_env(opts, state, image, cid, home)
    workdir = opts.get("workdir", ["/"])[-1]
    record = {"id": cid, "name": name, "image": image, "labels": labels, "command": command,
              "rm": _true(opts.get("rm")), "init": _true(opts.get("init")), "pid": 0, "started": 0, "exit": None}
    container = [0]
    if opts.get("sig-proxy", ["true"])[-1] != "false" and not _true(opts.get("detach")):
        # (before the fork: a signal that comes while the container starts still reaches it)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, lambda signum, frame: container[0] and _kill(container[0], signum))
    with _registry_lock(state):  # (held until the record has its pid: `ps` and `rm` never see one without)
        for other in _records(state):
            if other["name"] == name:
                raise Refused(f"docker: Error response from daemon: Conflict. The container name \"/{name}\" is "
                              f"already in use by container \"{other['id']}\". You have to remove (or rename) that "
                              "container to be able to reuse that name.\n\nRun 'docker run --help' for more "
                              "information", 125)
        pid = os.fork()
        if pid == 0:  # the container: apart from the client, as the daemon's child would be
            try:
                _docker_container(command, env, workdir, uid, gid)
            finally:
                os._exit(126)  # (never back into the client's code)
        container[0] = pid
        record.update(pid=pid, started=_start_time(pid))
        _write(state, record)
    if _true(opts.get("detach")):
        print(cid)
        return 0
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # killed by signal N: docker says 128+N
    with _registry_lock(state):
        if record["rm"]:
            _remove_record(state, cid)
        elif _record_path(state, cid).exists():
            _write(state, {**record, "exit": code})
    return code


def _docker_container(command: list[str], env: dict[str, str], workdir: str, uid: int, gid: int) -> None:
    try:
        os.setsid()
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the daemon passes a container stdio only
        if (uid, gid) != (os.getuid(), os.getgid()):
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        os.chdir(workdir)
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        sys.stderr.write(f"docker: Error response from daemon: failed to create task for container: exec: "
                         f"\"{command[0]}\": executable file not found in $PATH: unknown\n")
        os._exit(127)
    except OSError as exc:
        sys.stderr.write(f"docker: Error response from daemon: failed to create task for container: {exc}\n")
        os._exit(126)


def _docker_ps(args: list[str], state: Path) -> int:
    opts, rest = _parse(args, DOCKER_PS, _docker_unknown("ps"), interspersed=True)
    if rest:
        raise Refused(f"\"docker ps\" accepts no arguments.\nSee 'docker ps --help'.\n(got {rest})", 1)
    shown = []
    with _registry_lock(state):
        for record in _records(state):
            running = _running(record)
            if not running and record["rm"]:  # the daemon removes an --rm container once it ends
                _remove_record(state, record["id"])
                continue
            if (running or _true(opts.get("all"))) and all(_matches(record, f) for f in opts.get("filter", [])):
                shown.append(record)
    for record in shown:
        if _true(opts.get("quiet")):
            print(record["id"][:12])
        else:
            template = opts.get("format", ["{{.ID}}\t{{.Image}}\t{{.Names}}"])[-1]
            print(template.replace("{{.ID}}", record["id"][:12]).replace("{{.Names}}", record["name"])
                  .replace("{{.Image}}", record["image"]))
    return 0


def _matches(record: dict, spec: str) -> bool:
    key, _, wanted = spec.partition("=")
    if key == "label":
        label, eq, value = wanted.partition("=")
        return label in record["labels"] and (not eq or record["labels"][label] == value)
    if key == "name":
        return wanted in record["name"]
    if key == "id":
        return record["id"].startswith(wanted)
    raise Refused(f"Error response from daemon: invalid filter '{key}'", 1)


def _docker_rm(args: list[str], state: Path) -> int:
    opts, names = _parse(args, DOCKER_RM, _docker_unknown("rm"), interspersed=True)
    if not names:
        raise Refused("\"docker rm\" requires at least 1 argument.\nSee 'docker rm --help'.", 1)
    if _dry_run():
        return 0
    failed = False
    for wanted in names:
        with _registry_lock(state):
            record = next((r for r in _records(state) if r["name"] == wanted or r["id"].startswith(wanted)), None)
            if record is None:
                sys.stderr.write(f"Error response from daemon: No such container: {wanted}\n")
                failed = True
                continue
            if _running(record):
                if not _true(opts.get("force")):
                    sys.stderr.write(f"Error response from daemon: cannot remove container \"/{record['name']}\": "
                                     "container is running: stop the container before removing or force remove\n")
                    failed = True
                    continue
                _kill(-record["pid"], signal.SIGKILL)  # the container's whole session
                deadline = time.monotonic() + 10
                while _running(record) and time.monotonic() < deadline:
                    time.sleep(0.02)
            _remove_record(state, record["id"])
        print(wanted)
    return 1 if failed else 0


# The registry of docker containers: one JSON file each, changed under a lock (runs start in parallel).

def _registry(state: Path) -> Path:
    path = state / "containers"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _registry_lock:
    def __init__(self, state: Path):
        self.path = _registry(state) / ".lock"

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.file.close()


def _record_path(state: Path, cid: str) -> Path:
    return _registry(state) / f"{cid}.json"


def _records(state: Path) -> list[dict]:
    found = []
    for path in sorted(_registry(state).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # removed meanwhile
    return found


def _write(state: Path, record: dict) -> None:
    path = _record_path(state, record["id"])
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)


def _remove_record(state: Path, cid: str) -> None:
    _record_path(state, cid).unlink(missing_ok=True)


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks (tells it from a later process that reuses its pid); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if fields[0] != "Z" else 0


def _running(record: dict) -> bool:
    return bool(record["pid"]) and record["exit"] is None and _start_time(record["pid"]) == record["started"] != 0


def _dry_run() -> bool:
    return os.environ.get(DRY_RUN_ENV) == "1"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# --- Apptainer and Singularity ----------------------------------------------------------

# From `apptainer exec --help` (1.x); SingularityCE's exec takes the same ones the endpoint might meet.
APPTAINER_EXEC = _spec(
    "add-caps app apply-cgroups authfile bind|B blkio-weight blkio-weight-device containlibs cpu-shares cpus "
    "cpuset-cpus cpuset-mems cwd dns docker-host drop-caps env env-file fusemount home|H hostname memory "
    "memory-reservation memory-swap mount network network-args no-mount overlay|o pem-path pids-limit pwd "
    "scratch|S security workdir|W",
    "allow-setuid cleanenv|e compat contain|c containall|C disable-cache fakeroot|f ipc|i keep-privs net|n "
    "no-eval no-home no-https no-init no-privs no-umask nv nvccli oom-kill-disable pid|p rocm unsquash "
    "userns|u uts writable|w writable-tmpfs passphrase sharens")
IMAGE_SCHEMES = ("docker", "docker-archive", "docker-daemon", "library", "oras", "shub", "instance", "oci",
                 "oci-archive", "http", "https")


def apptainer(runtime: str, args: list[str]) -> int:
    prefix = runtime.upper()

    def unknown(problem: str) -> Refused:
        return Refused(f"Error: {problem}\n\nUsage:\n  {runtime} [exec options...] <container> <command>", 255)

    if not args or args[0] != "exec":
        raise Refused(f"shim: only `{runtime} exec` is handled (got {args[:1]})", 255)
    opts, rest = _parse(args[1:], APPTAINER_EXEC, unknown, interspersed=False)
    if len(rest) < 2:
        raise unknown(f"requires at least 2 arg(s), only received {len(rest)}")
    image, command = rest[0], rest[1:]
    binds = []
    for spec in (s for value in opts.get("bind", []) for s in value.split(",")):
        source, _, dest_opts = spec.partition(":")
        dest, _, mount_opts = dest_opts.partition(":")
        if mount_opts and mount_opts not in ("ro", "rw"):
            raise Refused(f"FATAL:   while parsing bind path {spec}: invalid option {mount_opts!r}", 255)
        binds.append((source, dest or source))
    if _dry_run():  # (the command line holds; what follows looks at this host's files)
        return 0
    scheme, sep, _ = image.partition(":")
    if not (sep and scheme in IMAGE_SCHEMES) and not Path(image).exists():
        raise Refused(f"FATAL:   could not open image {image}: failed to retrieve path for {image}: lstat {image}: "
                      "no such file or directory", 255)
    for source, dest in binds:
        if not Path(source).exists():
            raise Refused(f"FATAL:   container creation failed: mount hook function failure: mount {source}->{dest} "
                          f"error: while mounting {source}: mount source {source} doesn't exist", 255)
    contained = _true(opts.get("cleanenv")) or _true(opts.get("containall"))
    # The caller's environment comes in (unless --cleanenv), but not its PATH or library path: the image's instead.
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "LD_LIBRARY_PATH")} if not contained else \
        {k: os.environ[k] for k in ("HOME", "LANG", "TERM", "USER") if k in os.environ}
    env["PATH"] = IMAGE_PATH
    for key, value in list(os.environ.items()):
        for env_prefix in (f"{prefix}ENV_", "APPTAINERENV_", "SINGULARITYENV_"):
            if key.startswith(env_prefix):
                env[key.removeprefix(env_prefix)] = value
    for item in (i for value in opts.get("env", []) for i in value.split(",")):
        key, _, value = item.partition("=")
        env[key] = value
    env.update({f"{prefix}_CONTAINER": image, f"{prefix}_NAME": Path(image).name, "CE_SHIM_RUNTIME": runtime,
                "CE_SHIM_IMAGE": image})
    if "pwd" in opts:
        os.chdir(opts["pwd"][-1])
    try:
        os.execvpe(command[0], command, env)  # in the caller's process tree, with its descriptors
    except OSError as exc:
        raise Refused(f"FATAL:   \"{command[0]}\": {exc.strerror}", 255) from None


# --- Shifter ---------------------------------------------------------------------------------

SHIFTER_LONG = {"help": False, "volume": True, "verbose": False, "image": True, "workdir": True, "env": False}
SHIFTER_SHORT = {"h": False, "n": False, "v": False, "V": True, "i": True, "e": True, "w": True}  # "hnvV:i:e:w:"
SHIFTER_REFUSED_UNDER = ("/etc", "/var", "etc", "var", "/opt/udiImage", "opt/udiImage")
SHIFTER_REFUSED = ("/opt", "opt")


def shifter(args: list[str]) -> int:
    usage = ("\nUsage:\nshifter [-h|--help] [-v|--verbose] [--image=<imageType>:<imageTag>]\n"
             "    [--entry] [-V|--volume=/path/to/bind:/mnt/in/image[:<flags>][,...]]\n"
             "    [-- /command/to/exec/in/shifter [args...]]\n")
    image, volumes, workdir = None, [], None
    i = 0
    while i < len(args):  # getopt_long with POSIXLY_CORRECT: options end at the first word that is not one
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name == "entrypoint":
                raise Refused("shim: --entrypoint needs the image's own entrypoint, which it does not have", 1)
            if name not in SHIFTER_LONG:
                raise Refused(f"shifter: unrecognized option '{arg}'\nMissing an argument!\n{usage}", 1)
            if SHIFTER_LONG[name] and not eq:
                if i + 1 >= len(args):
                    raise Refused(f"shifter: option '--{name}' requires an argument\nMissing an argument!\n{usage}", 1)
                i += 1
                value = args[i]
            option = {"volume": "V", "image": "i", "workdir": "w"}.get(name, "")
        else:
            option, value = arg[1], arg[2:]
            if option not in SHIFTER_SHORT:
                raise Refused(f"shifter: invalid option -- '{option}'\nMissing an argument!\n{usage}", 1)
            if SHIFTER_SHORT[option] and not value:
                if i + 1 >= len(args):
                    raise Refused(f"shifter: option requires an argument -- '{option}'\nMissing an argument!\n"
                                  f"{usage}", 1)
                i += 1
                value = args[i]
        if option == "i":
            image = value
        elif option == "V":
            volumes += [v for v in value.split(";") if v]
        elif option == "w":
            workdir = value
        i += 1
    command = args[i:] or [os.environ.get("SHELL", "/bin/sh")]
    if not image or image.endswith(":"):
        raise Refused(f"No image specified, or specified incorrectly!\n{usage}", 1)
    for volume in volumes:
        source, _, rest = volume.partition(":")
        dest, _, flags = rest.partition(":")
        refused = not dest or dest in SHIFTER_REFUSED or any(
            dest == root or dest.startswith(root.rstrip("/") + "/") for root in SHIFTER_REFUSED_UNDER)
        if refused or any(flag not in ("ro", "rec", "slave", "private") and not flag.startswith("perNodeCache")
                          for flag in flags.split(":") if flag):
            raise Refused(f"Invalid volume map {volume!r}: a destination under /etc, /var or /opt/udiImage, or "
                          f"/opt itself, is not allowed\nFailed to parse volume map options\n{usage}", 1)
    if _dry_run():  # (the command line holds; what follows looks at this host's files)
        return 0
    for volume in volumes:
        if not Path(volume.partition(":")[0]).exists():
            raise Refused("FAILED to setup user-requested mounts.\nFAILED to setup image.", 1)
    # The caller's environment comes in, with the image's PATH; SHIFTER_RUNTIME=1 is the usual site setting.
    env = {**os.environ, "PATH": IMAGE_PATH, "SHIFTER_RUNTIME": "1", "CE_SHIM_RUNTIME": "shifter",
           "CE_SHIM_IMAGE": image}
    if workdir is not None:
        try:
            os.chdir(workdir)
        except OSError:
            sys.stderr.write(f"Failed to switch to working dir: {workdir}, staying in /\n")
            os.chdir("/")
    try:
        os.execvpe(command[0], command, env)  # a plain exec: descriptors and process tree stay as they were
    except OSError as exc:
        raise Refused(f"shifter: {command[0]}: {exc.strerror}", 127) from None


# --- entry point -------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    invoked, args = argv[1], argv[2:]
    runtime = Path(invoked).name
    state = Path(os.environ.get(STATE_ENV) or Path(invoked).resolve().parent)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "calls.jsonl", "a") as log:  # O_APPEND: a line per call, whole, from parallel callers
        log.write(json.dumps({"argv": [runtime, *args], "pid": os.getpid()}) + "\n")
    try:
        if runtime == "docker":
            return docker(args, state)
        if runtime in ("apptainer", "singularity"):
            return apptainer(runtime, args)
        if runtime == "shifter":
            return shifter(args)
        raise Refused(f"runtime_shim: no runtime called {runtime!r}; expected one of {', '.join(RUNTIMES)}", 2)
    except Refused as refused:
        sys.stderr.write(f"{refused}\n")
        return refused.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
