#!/usr/bin/python3
"""Builds the flashable Coffer disk image for one board.

Inputs: the board's data files (board/common + board/BOARD), Debian's kernel
(apt-get download, never installed), busybox-static, mdadm, e2fsprogs and
smartmontools from the build host (Debian 12) or, for a board of another
architecture, from Debian's packages of that architecture (downloaded and
unpacked), and `coffer` built for the board's musl target. Output: out/coffer-BOARD.img and its .sha256, plus the
pieces tests boot directly (OUT_DIR/coffer-BOARD-boot/: vmlinux, vmlinuz, initrd.zst, cmdline).

Layout (GPT, protective MBR):
  1 coffer-boot   FAT32 ESP, LegacyBIOSBootable: syslinux (BIOS), systemd-boot
                  (UEFI) and the two slots /coffer/a and /coffer/b, each a
                  kernel + initramfs (the initramfs is the whole root file system)
  2 coffer-state  ext4: host keys, users, config (the `coffer --state` directory)

Reproducible: every time stamp comes from SOURCE_DATE_EPOCH (the last commit's
time unless set), every UUID and volume id is derived from the board name.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
CACHE = OUT / "cache"

MiB = 1024 * 1024
ESP_MIB = 40
STATE_MIB = 4
ESP_START = 1 * MiB
STATE_START = ESP_START + ESP_MIB * MiB
IMAGE_BYTES = STATE_START + STATE_MIB * MiB + MiB  # + room for the backup GPT

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

# Host programs the appliance runs, with their shared libraries.
HOST_PROGRAMS = {
    "/usr/sbin/mdadm": "sbin/mdadm",
    "/usr/sbin/e2fsck": "sbin/e2fsck",
    "/usr/sbin/mke2fs": "sbin/mke2fs",
    "/usr/sbin/smartctl": "sbin/smartctl",
}

# The same programs for a board of another architecture, from these Debian
# packages (with the libraries they load).
FOREIGN_PACKAGES = ["busybox-static", "mdadm", "e2fsprogs", "smartmontools", "libc6", "libudev1", "libext2fs2",
                    "libcom-err2", "libblkid1", "libuuid1", "libselinux1", "libstdc++6", "libgcc-s1", "libpcre2-8-0"]


def log(msg):
    print(f"build-image: {msg}", flush=True)


def run(*args, env=None, cwd=None, stdin=None, capture=False):
    full_env = dict(os.environ, **(env or {}))
    result = subprocess.run(
        [str(a) for a in args], env=full_env, cwd=cwd, input=stdin,
        stdout=subprocess.PIPE if capture else None, check=False, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"build-image: {' '.join(str(a) for a in args)} failed with status {result.returncode}")
    return result.stdout if capture else None


def fixed_uuid(board, what):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"coffer:{board}:{what}")).upper()


def source_date_epoch():
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else 1700000000


def load_board(name):
    board_dir = ROOT / "board" / name
    if not (board_dir / "board.toml").is_file():
        boards = sorted(p.name for p in (ROOT / "board").iterdir() if (p / "board.toml").is_file())
        sys.exit(f"build-image: unknown board {name!r}; boards: {', '.join(boards)}")
    settings = {"name": name, **tomllib.loads((ROOT / "board/common/board.toml").read_text())}
    board = tomllib.loads((board_dir / "board.toml").read_text())
    cmdline = settings.get("cmdline", "") + " " + board.pop("cmdline", "")
    settings.update(board)
    settings["cmdline"] = cmdline.strip()
    modules = []
    for path in (ROOT / "board/common/modules", board_dir / "modules"):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                module, _, params = line.partition(" ")
                modules.append((module, params.strip()))
    settings["modules"] = modules
    for table in ("disks", "leds"):
        own = board_dir / f"{table}.toml"
        settings[table] = tomllib.loads((own if own.is_file() else ROOT / f"board/common/{table}.toml").read_text())
    settings["name"] = name
    settings["dir"] = board_dir
    return settings


# What load_board adds that is not the board's TOML: the modules go to
# modules.list, resolved against the kernel; the directory is the build's.
NOT_IN_BOARD_TOML = ("modules", "dir")


def merged_board_toml(board):
    """The board as one TOML file, installed as /etc/coffer/board.toml and
    read by `coffer` as a `coffer_board::Board`: the top level from the
    board.toml files (the board's keys over common's, command lines joined),
    [disks] and [leds] from the board's disks.toml and leds.toml (or common's).
    Every key the files hold is written, so `coffer board check` sees a typo."""
    def value(key, v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(key, item) for item in v) + "]"
        sys.exit(f"build-image: board {board['name']}: {key} = {v!r}: a board file holds only strings, numbers, booleans and lists")
    top = [f"{k} = {value(k, v)}" for k, v in board.items() if k not in NOT_IN_BOARD_TOML and not isinstance(v, dict)]
    lines = [f"# board/{board['name']} over board/common, merged by image/build.py; checked by `coffer board check`.", *top]
    for table, keys in board.items():
        if isinstance(keys, dict):
            lines += ["", f"[{table}]", *(f"{k} = {value(f'{table}.{k}', v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


def check_board(coffer_bin, board, board_toml):
    """Runs the binary about to be installed on the board file it will read:
    a key it does not know, or a value it would refuse, stops the build."""
    result = subprocess.run([str(coffer_bin), "board", "check", str(board_toml)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"build-image: board/{board['name']} (or board/common) is not valid, see above: {board_toml} is their merge "
                 "(the top level from board.toml, [disks] from disks.toml, [leds] from leds.toml)")
    log(result.stdout.strip())


def fetch_kernel(package):
    """Downloads the kernel .deb the meta package points at; returns (abi, tree)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    real = None
    for attempt in range(2):
        depends = subprocess.run(["apt-cache", "depends", package], capture_output=True, text=True).stdout
        real = next((l.split()[-1] for l in depends.splitlines() if "Depends: linux-image-" in l), None)
        if real or attempt:
            break
        log("package lists do not know the kernel; running apt-get update")
        # A list the mirror fails to serve is not fatal: the kernel's may be among the others.
        subprocess.run(["apt-get", "update", "-qq"], check=False)
    if not real:
        sys.exit(f"build-image: apt-cache knows no {package}; run apt-get update (and dpkg --add-architecture i386 for 686)")
    deb, _ = download_deb(real)
    abi = real.removeprefix("linux-image-").split(":")[0]
    tree = CACHE / f"kernel-{abi}"
    if not (tree / "lib/modules" / abi / "modules.dep").exists():
        shutil.rmtree(tree, ignore_errors=True)
        run("dpkg-deb", "-x", deb, tree)
        run("depmod", "-b", tree, abi)
    return abi, tree


def fetch_deb_file(package, member):
    """One file out of a Debian package (systemd-boot's EFI binary), checked
    against the package index like the kernel and cached by version."""
    deb, version = download_deb(package)
    target = CACHE / f"{package}-{version}"
    if not (target / member).exists():
        shutil.rmtree(target, ignore_errors=True)
        run("dpkg-deb", "-x", deb, target)
    return target / member


def check_kernel_config(tree, abi, modules):
    config = (tree / "boot" / f"config-{abi}").read_text()
    for symbol in ("CONFIG_DEVTMPFS=y", "CONFIG_BLK_DEV_INITRD=y", "CONFIG_RD_ZSTD=y", "CONFIG_EFI_PARTITION=y"):
        if symbol not in config:
            sys.exit(f"build-image: the kernel {abi} lacks {symbol}, which the image relies on")


def resolve_modules(tree, abi, modules):
    """Module files in load order (dependencies and softdeps first), with parameters."""
    ordered, seen = [], set()
    params = {name.replace("-", "_"): p for name, p in modules}
    for name, _ in modules:
        out = run("modprobe", "-C", "/dev/null", "-d", tree, "-S", abi, "--show-depends", name, capture=True)
        for line in out.splitlines():
            words = line.split()
            if words[0] != "insmod":
                continue
            path = words[1]
            if path in seen:
                continue
            seen.add(path)
            mod = Path(path).name.removesuffix(".ko").replace("-", "_")
            ordered.append((Path(path).relative_to(tree), params.get(mod, "")))
    return ordered


def copy_with_libs(staging, source, dest):
    target = staging / dest
    if target.is_symlink():
        sys.exit(f"build-image: {target} is a link; refusing to copy through it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    for line in run("ldd", source, capture=True).splitlines():
        words = line.split()
        lib = words[2] if "=>" in words and len(words) > 2 else words[0]
        if not lib.startswith("/"):
            continue
        real = Path(lib).resolve()
        real_out = staging / str(real).lstrip("/")
        if not real_out.exists():
            real_out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, real_out)
        # The name ldd gives (a soname link on the host) becomes a link here too: one copy.
        link_out = staging / lib.lstrip("/")
        if not link_out.exists() and not link_out.is_symlink():
            link_out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(real_out.resolve(), link_out.parent.resolve()), link_out)


def download_deb(spec):
    """The .deb apt would install for `spec` (`name` or `name:arch`), kept in
    out/cache and checked against the package index's SHA256; (path, version)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # The candidate's stanza, not the highest version some source lists.
    show = run("apt-cache", "show", "--no-all-versions", spec, capture=True)
    fields = dict(l.split(": ", 1) for l in show.split("\n\n")[0].splitlines() if ": " in l)
    version = fields["Version"]
    # apt-get download's file name, with an epoch's colon escaped as in the pool.
    deb = CACHE / f"{fields['Package']}_{version.replace(':', '%3a')}_{fields['Architecture']}.deb"
    if not deb.exists() or hashlib.sha256(deb.read_bytes()).hexdigest() != fields["SHA256"]:
        log(f"downloading {spec} {version}")
        run("apt-get", "download", "-q", f"{spec}={version}", cwd=CACHE)
        if hashlib.sha256(deb.read_bytes()).hexdigest() != fields["SHA256"]:
            sys.exit(f"build-image: {deb.name} does not match the SHA256 in the package index")
    return deb, version


def foreign_root(arch, packages):
    """Debian's packages of another architecture (i386 for a 32-bit board),
    downloaded and unpacked together into one tree; never installed."""
    root = CACHE / f"root-{arch}"
    stamp = root / ".packages"
    debs = [download_deb(f"{package}:{arch}")[0] for package in packages]
    listing = "".join(f"{deb.name}\n" for deb in debs)
    if stamp.exists() and stamp.read_text() == listing:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        run("dpkg-deb", "-x", deb, root)
    stamp.write_text(listing)
    return root


def copy_foreign_with_libs(staging, root, source, dest):
    """Like copy_with_libs, for a program of another architecture: its
    interpreter and libraries (NEEDED, recursively) come from `root`."""
    lib_dirs = [Path(d) for d in ("lib/i386-linux-gnu", "usr/lib/i386-linux-gnu", "lib", "usr/lib")]
    found = next((root / p for p in (source.lstrip("/"), "usr/" + source.lstrip("/"), source.lstrip("/").removeprefix("usr/"))
                  if (root / p).is_file()), None)
    if found is None:
        sys.exit(f"build-image: no {source} in the downloaded packages ({root})")
    target = staging / dest
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(found, target)
    todo, seen = [found], set()
    while todo:
        elf = todo.pop()
        dynamic = run("readelf", "-d", "-l", elf, capture=True)
        names = [l.split("[")[1].rstrip("]") for l in dynamic.splitlines() if "(NEEDED)" in l]
        names += [l.split(":", 1)[1].strip().rstrip("]") for l in dynamic.splitlines() if "program interpreter:" in l]
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            rel = next((d / Path(name).name for d in lib_dirs if (root / d / Path(name).name).exists()), None)
            if name.startswith("/"):
                rel = Path(name.lstrip("/"))
            if rel is None or not (root / rel).exists():
                sys.exit(f"build-image: {source} needs {name}, which no downloaded package holds; add its package to "
                         f"FOREIGN_PACKAGES in image/build.py")
            real = (root / rel).resolve()
            # Merged /usr in the image: lib/... lands in usr/lib/....
            rel_usr = rel if rel.parts[0] == "usr" else Path("usr") / rel
            out = staging / rel_usr
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists():
                shutil.copy2(real, out)
            todo.append(real)


def build_firmware(board, work):
    target = board["rust-target"]
    cpu = board.get("rust-cpu")
    log(f"building coffer for {target}" + (f" ({cpu})" if cpu else ""))
    # Paths of the builder's checkout and cargo home must not end up in the binary.
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    flags = f"--remap-path-prefix={cargo_home}=/cargo --remap-path-prefix={ROOT}=/coffer"
    triple = target.upper().replace("-", "_")
    args = ["cargo", "build", "--release", "--locked", "--target", target, "-p", "coffer"]
    env = {}
    if cpu:
        # Rust's prebuilt standard library for the target assumes a newer CPU
        # (SSE2 on i686): it is rebuilt from rust-src for this one, and C code
        # goes through a compiler wrapper that holds it to the same CPU.
        sysroot = run("rustc", "--print", "sysroot", capture=True).strip()
        flags += f" -C target-cpu={cpu} --remap-path-prefix={sysroot}=/rust"
        args += ["-Zbuild-std=std,panic_abort"]
        env = {"RUSTC_BOOTSTRAP": "1", f"CC_{target.replace('-', '_')}": str(ROOT / board["c-compiler"]),
               # Symbols stay for the instruction check below; the copy in the image is stripped.
               "CARGO_PROFILE_RELEASE_STRIP": "false"}
    env[f"CARGO_TARGET_{triple}_RUSTFLAGS"] = flags
    run(*args, cwd=ROOT, env=env)
    binary = ROOT / "target" / target / "release" / "coffer"
    if cpu:
        check_instructions(binary, board)
        stripped = work / "coffer"
        run("strip", "-o", stripped, binary)
        return stripped
    return binary


# Instructions a Pentium III / VIA C3 runs: x87, MMX and SSE (1). Functions
# using anything newer are allowed only where a crate picks them at run time
# after asking CPUID (RustCrypto's AES-NI, SHA, AVX2 and SSE2 backends).
SSE1 = set("""movaps movups xorps andps orps andnps addss subss mulss divss sqrtss maxss minss cmpss comiss ucomiss
cvtsi2ss cvttss2si cvtss2si movss shufps unpcklps unpckhps movhlps movlhps rcpss rsqrtss movlps movhps addps subps mulps
divps maxps minps cmpps sqrtps rcpps rsqrtps ldmxcsr stmxcsr movmskps cvtpi2ps cvtps2pi cvttps2pi movntps""".split())
# Scalar and MMX-register instructions of later CPUs (tzcnt is missing on
# purpose: it is `rep bsf`, which older CPUs run as bsf, and compilers use it so).
NEWER_OPS = set("""popcnt lzcnt movbe andn bextr blsi blsmsk blsr bzhi pdep pext rorx sarx shlx shrx adcx adox crc32
fisttp fisttps fisttpl fisttpll rdrand rdseed cmpxchg16b mfence lfence movnti clflush maskmovdqu""".split())
MMX_NEWER_OPS = set("""paddq psubq pmuludq pshufb palignr pabsb pabsw pabsd psignb psignw psignd phaddw phaddd phaddsw phsubw
phsubd phsubsw pmaddubsw pmulhrsw""".split())
RUNTIME_DISPATCHED = (
    "aes::", "<aes::", "chacha20::backends::sse2::", "chacha20::backends::avx2::", "poly1305::backend::avx2",
    "<poly1305::backend::avx2", "polyval::backend::", "<polyval::backend::", "sha1::compress::x86", "sha2::sha256::x86",
    "sha2::sha512::x86", "<argon2::Argon2>::compress::compress_avx2", "core::core_arch::x86::",
)


def check_instructions(binary, board):
    """Fails the build if code outside RUNTIME_DISPATCHED uses an instruction
    newer than the board's CPU has (SSE2 and later)."""
    offenders = {}
    function = None
    proc = subprocess.Popen(["objdump", "-d", "-C", "--no-show-raw-insn", str(binary)], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.endswith(">:\n"):
            function = line.split("<", 1)[1].rsplit(">", 1)[0]
            continue
        if function is None:
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[1].strip():
            continue
        insn = parts[1].strip()
        op = insn.split()[0]
        newer = op in NEWER_OPS or ("%mm" in insn and op in MMX_NEWER_OPS) \
            or ("%xmm" in insn and op not in SSE1) or "%ymm" in insn or "%zmm" in insn
        if newer and not function.startswith(RUNTIME_DISPATCHED):
            offenders.setdefault(function, insn)
    if proc.wait() != 0:
        sys.exit(f"build-image: objdump {binary} failed")
    if offenders:
        listing = "\n".join(f"  {f[:160]}: {i}" for f, i in sorted(offenders.items())[:20])
        sys.exit(f"build-image: {binary} uses instructions a {board['rust-cpu']} lacks in {len(offenders)} function(s):\n{listing}")
    log(f"checked: no instruction beyond {board['rust-cpu']} outside code chosen at run time by CPUID")


def make_initramfs(board, board_toml, abi, tree, coffer_bin, work, admin_key, update_cert, epoch):
    staging = work / "initramfs"
    shutil.rmtree(staging, ignore_errors=True)
    for d in ("bin", "sbin", "etc/coffer", "proc", "sys", "dev", "run", "tmp", "state", "root", "var", "usr/bin", "usr/sbin",
              "usr/lib", "usr/lib64"):
        (staging / d).mkdir(parents=True, exist_ok=True)
    # Merged /usr, as on Debian: one copy of each library whichever path ldd names.
    os.symlink("usr/lib", staging / "lib")
    os.symlink("usr/lib64", staging / "lib64")
    shutil.copy2(coffer_bin, staging / "bin/coffer")
    os.symlink("bin/coffer", staging / "init")
    if board["arch"] == "x86_64":
        shutil.copy2("/usr/bin/busybox", staging / "bin/busybox")
        for source, dest in HOST_PROGRAMS.items():
            copy_with_libs(staging, source, dest)
    else:
        # The build host is amd64: the board's programs come from Debian's packages of its architecture.
        root = foreign_root(board["debian-arch"], FOREIGN_PACKAGES)
        copy_foreign_with_libs(staging, root, "/bin/busybox", "bin/busybox")
        for source, dest in HOST_PROGRAMS.items():
            copy_foreign_with_libs(staging, root, source, dest)
    # Applet links are relative and made last: a link never stands where a
    # real program goes, and nothing is ever copied through a link to the host.
    for applet in run("/usr/bin/busybox", "--list-full", capture=True).split():
        link = staging / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(staging / "bin/busybox", link.parent), link)
    modules = resolve_modules(tree, abi, board["modules"])
    lines = []
    for rel, params in modules:
        out = staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / rel, out)
        lines.append(f"/{rel} {params}".strip())
    moddir = tree / "lib/modules" / abi
    for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy2(moddir / f, staging / "lib/modules" / abi / f)
    run("depmod", "-b", staging, abi)
    (staging / "etc/coffer/modules.list").write_text("# generated by image/build.py: load order, parameters\n" + "\n".join(lines) + "\n")
    shutil.copytree(ROOT / "rootfs-overlay", staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    shutil.copy2(board_toml, staging / "etc/coffer/board.toml")
    os.chmod(staging / "etc/coffer/board.toml", 0o644)
    (staging / "etc/hostname").write_text("coffer\n")
    (staging / "etc/os-release").write_text(f'NAME=Coffer\nID=coffer\nVERSION_ID="{version()}"\nPRETTY_NAME="Coffer {version()}"\n')
    if admin_key:
        shutil.copy2(admin_key, staging / "etc/coffer/admin.pub")
        os.chmod(staging / "etc/coffer/admin.pub", 0o644)
    if update_cert:
        # `update apply` accepts only bundles signed by this key.
        shutil.copy2(update_cert, staging / "etc/coffer/update-key.asc")
        os.chmod(staging / "etc/coffer/update-key.asc", 0o644)
    # Modes must not depend on the builder's umask.
    run("find", staging, "-type", "d", "-exec", "chmod", "0755", "{}", "+")
    for tmp in ("tmp",):
        os.chmod(staging / tmp, 0o1777)
    run("find", staging, "-exec", "touch", "-h", "-d", f"@{epoch}", "{}", "+")
    cpio = work / "initrd.cpio"
    names = run("sh", "-c", "find . -mindepth 1 | LC_ALL=C sort", cwd=staging, capture=True)
    with open(cpio, "wb") as f:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0", "--reproducible"],
                       input=names.encode(), stdout=f, cwd=staging, check=True)
    initrd = work / "initrd.zst"
    run("zstd", "-q", "-f", f"-{os.environ.get('COFFER_ZSTD_LEVEL', '19')}", "-T1", cpio, "-o", initrd)
    log(f"initramfs: {len(modules)} modules, {cpio.stat().st_size // 1024} KiB, {initrd.stat().st_size // 1024} KiB compressed")
    return initrd


def version():
    text = (ROOT / "Cargo.toml").read_text()
    return text.split('[workspace.package]')[1].split('version = "')[1].split('"')[0]


def extract_vmlinux(vmlinuz, out):
    """The uncompressed ELF kernel, which QEMU boots directly (PVH) without the xz step."""
    data = vmlinuz.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        return
    proc = subprocess.run(["xz", "-dc"], input=data[start:], capture_output=True)
    if proc.stdout[:4] == b"\x7fELF":
        out.write_bytes(proc.stdout)


def make_esp(board, vmlinuz, initrd, work, epoch, volid, extra_cmdline):
    esp = work / "esp.img"
    esp.unlink(missing_ok=True)
    run("mkfs.vfat", "-F", "32", "-s", "1", "-n", "COFFERBOOT", "-i", volid, "--invariant",
        "-h", str(ESP_START // 512), "-C", esp, str(ESP_MIB * 1024), capture=True)
    env = {"SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1"}
    img = f"{esp}"
    for d in ("::/coffer", "::/coffer/a", "::/coffer/b", "::/syslinux", "::/loader", "::/loader/entries", "::/EFI", "::/EFI/BOOT"):
        run("mmd", "-i", img, d, env=env)
    files = work / "esp-files"
    files.mkdir(exist_ok=True)
    (files / "version").write_text(version() + "\n")
    for slot in ("a", "b"):
        run("mcopy", "-i", img, vmlinuz, f"::/coffer/{slot}/vmlinuz", env=env)
        run("mcopy", "-i", img, initrd, f"::/coffer/{slot}/initrd.zst", env=env)
        run("mcopy", "-i", img, files / "version", f"::/coffer/{slot}/version", env=env)
    # Slot a is good; no trial is pending (see firmware/slots).
    (files / "slots").write_text("good a\n")
    run("mcopy", "-i", img, files / "slots", "::/coffer/slots", env=env)
    cmdline = board["cmdline"] + (" " + extra_cmdline if extra_cmdline else "")
    if board.get("bios", True):
        cfg = ["SERIAL 0 115200", "DEFAULT a", "PROMPT 0", "TIMEOUT 0"]
        for slot in ("a", "b"):
            cfg += [f"LABEL {slot}", f"  LINUX /coffer/{slot}/vmlinuz", f"  INITRD /coffer/{slot}/initrd.zst",
                    f"  APPEND {cmdline} coffer.slot={slot}"]
        (files / "syslinux.cfg").write_text("\n".join(cfg) + "\n")
        run("mcopy", "-i", img, files / "syslinux.cfg", "::/syslinux/syslinux.cfg", env=env)
    if board.get("uefi", True):
        bootx64 = fetch_deb_file("systemd-boot-efi", "usr/lib/systemd/boot/efi/systemd-bootx64.efi")
        run("mcopy", "-i", img, bootx64, "::/EFI/BOOT/BOOTX64.EFI", env=env)
        (files / "loader.conf").write_text("default coffer-a.conf\ntimeout 0\nconsole-mode keep\n")
        run("mcopy", "-i", img, files / "loader.conf", "::/loader/loader.conf", env=env)
        for slot in ("a", "b"):
            entry = files / f"coffer-{slot}.conf"
            entry.write_text(f"title Coffer slot {slot}\nlinux /coffer/{slot}/vmlinuz\ninitrd /coffer/{slot}/initrd.zst\n"
                             f"options {cmdline} coffer.slot={slot}\n")
            run("mcopy", "-i", img, entry, f"::/loader/entries/coffer-{slot}.conf", env=env)
    return esp


def make_state(board, work, epoch, state_from):
    state = work / "state.ext4"
    state.unlink(missing_ok=True)
    src = work / "state-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    if state_from:
        if not (Path(state_from) / "coffer.toml").is_file():
            sys.exit(f"build-image: {state_from} is not a Coffer state directory (no coffer.toml); make one with coffer --state DIR init")
        shutil.copytree(state_from, src, dirs_exist_ok=True, symlinks=True)
        # User data never goes to the boot disk: only the data area's mount point is kept.
        config = tomllib.loads((src / "coffer.toml").read_text())
        data_dir = config.get("server", {}).get("data-dir", "data")
        if Path(data_dir).is_absolute() or ".." in Path(data_dir).parts:
            sys.exit(f"build-image: {state_from}: server.data-dir = {data_dir!r} must be a path inside the state directory for the appliance")
        data = src / data_dir
        if data.is_dir():
            shutil.rmtree(data)
        data.mkdir(mode=0o711, parents=True)
    run("find", src, "-exec", "touch", "-h", "-d", f"@{epoch}", "{}", "+")
    env = {"E2FSPROGS_FAKE_TIME": str(epoch), "SOURCE_DATE_EPOCH": str(epoch)}
    run("mke2fs", "-q", "-t", "ext4", "-L", "coffer-state", "-U", fixed_uuid(board["name"], "state-fs").lower(),
        "-E", f"hash_seed={fixed_uuid(board['name'], 'state-hash').lower()},root_owner=0:0",
        "-O", "^metadata_csum_seed", "-N", "256", "-d", src, state, f"{STATE_MIB}M", env=env)
    # mke2fs -d copies each file's ctime, which touch cannot set: pin them.
    cmds = ["sif / ctime @%d" % epoch]
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        # Owned by root whoever built it (user homes are chowned by the box at start).
        cmds += [f"sif /{rel} ctime @{epoch}", f"sif /{rel} uid 0", f"sif /{rel} gid 0"]
    (work / "debugfs.cmds").write_text("\n".join(cmds) + "\n")
    run("debugfs", "-w", "-f", work / "debugfs.cmds", state, env=env, capture=True)
    return state


def assemble(board, esp, state, image, epoch):
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    name = board["name"]
    bios_attr = ', attrs="LegacyBIOSBootable"' if board.get("bios", True) else ""
    table = (
        f"label: gpt\nlabel-id: {fixed_uuid(name, 'disk')}\nunit: sectors\nfirst-lba: 2048\n"
        f"start={ESP_START // 512}, size={ESP_MIB * MiB // 512}, type={ESP_TYPE}, name=\"coffer-boot\", "
        f"uuid={fixed_uuid(name, 'boot')}{bios_attr}\n"
        f"start={STATE_START // 512}, size={STATE_MIB * MiB // 512}, type={LINUX_TYPE}, name=\"coffer-state\", "
        f"uuid={fixed_uuid(name, 'state')}\n"
    )
    run("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image, stdin=table)
    for part, offset in ((esp, ESP_START), (state, STATE_START)):
        run("dd", f"if={part}", f"of={image}", "bs=1M", f"seek={offset // MiB}", "conv=notrunc,sparse", "status=none")
    if board.get("bios", True):
        # The mtools-based installer writes ldlinux.* with mtools, which honours SOURCE_DATE_EPOCH.
        run("syslinux", "--offset", str(ESP_START), "--install", "--directory", "/syslinux", image,
            env={"SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1"})
        run("dd", "if=/usr/lib/syslinux/mbr/gptmbr.bin", f"of={image}", "bs=440", "count=1", "conv=notrunc", "status=none")


def main():
    parser = argparse.ArgumentParser(prog="build-image", description=__doc__.split("\n\n")[0])
    parser.add_argument("board", nargs="?", default="qemu-x86_64")
    parser.add_argument("--state-from", metavar="DIR", help="seed the state partition from a coffer state directory")
    parser.add_argument("--admin-key", metavar="PUBKEY_FILE", help="OpenSSH public key(s) of user admin, added at first boot")
    parser.add_argument("--out-dir", metavar="DIR", default=str(OUT), help="where the image and its sha256 go (default out/)")
    parser.add_argument("--update-key", metavar="DIR",
                        help="update-key.asc from DIR is baked in (only bundles it signed are accepted); with "
                             "update-key.secret.asc there too, OUT/coffer-BOARD.bundle is signed")
    parser.add_argument("--cmdline-extra", metavar="ARGS", default="", help="appended to the board's kernel command line")
    parser.add_argument("--modules-extra", metavar="MOD,...", default="",
                        help="kernel modules loaded after the board's (to run a board's image in an emulator)")
    args = parser.parse_args()
    board = load_board(args.board)
    board["modules"] += [(m.strip(), "") for m in args.modules_extra.split(",") if m.strip()]
    if args.admin_key and not Path(args.admin_key).is_file():
        sys.exit(f"build-image: --admin-key {args.admin_key}: no such file")
    epoch = source_date_epoch()
    work = OUT / args.board
    work.mkdir(parents=True, exist_ok=True)
    abi, tree = fetch_kernel(board["kernel-package"])
    check_kernel_config(tree, abi, board["modules"])
    vmlinuz = tree / "boot" / f"vmlinuz-{abi}"
    shutil.copy2(vmlinuz, work / "vmlinuz")
    if not (work / "vmlinux").exists() or (work / "vmlinux").stat().st_mtime < vmlinuz.stat().st_mtime:
        extract_vmlinux(vmlinuz, work / "vmlinux")
    coffer_bin = build_firmware(board, work)
    board_toml = work / "board.toml"
    board_toml.write_text(merged_board_toml(board))
    check_board(coffer_bin, board, board_toml)
    update_cert = None
    if args.update_key:
        update_cert = Path(args.update_key) / "update-key.asc"
        if not update_cert.is_file():
            sys.exit(f"build-image: --update-key {args.update_key}: no update-key.asc there (make one with `coffer update keygen --out-dir DIR`)")
    initrd = make_initramfs(board, board_toml, abi, tree, coffer_bin, work, args.admin_key, update_cert, epoch)
    volid = fixed_uuid(args.board, "esp")[:8]
    esp = make_esp(board, vmlinuz, initrd, work, epoch, volid, args.cmdline_extra)
    state = make_state(board, work, epoch, args.state_from)
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / f"coffer-{args.board}.img"
    assemble(board, esp, state, image, epoch)
    # The pieces tests boot directly (QEMU -kernel/-initrd), matching this image.
    direct = out_dir / f"coffer-{args.board}-boot"
    direct.mkdir(exist_ok=True)
    for name in ("vmlinux", "vmlinuz", "initrd.zst"):
        (direct / name).unlink(missing_ok=True)
        if (work / name).exists():
            shutil.copy2(work / name, direct / name)
    (direct / "cmdline").write_text(board["cmdline"] + (" " + args.cmdline_extra if args.cmdline_extra else "") + "\n")
    secret = Path(args.update_key) / "update-key.secret.asc" if args.update_key else None
    if secret and secret.is_file():
        bundle = out_dir / f"coffer-{args.board}.bundle"
        run(coffer_bin, "update", "make-bundle", "--board", board["name"], "--version", version(), "--boot-dir", direct,
            "--key", secret, "--out", bundle, capture=True)
        log(f"{bundle}: signed update bundle, {bundle.stat().st_size / MiB:.1f} MiB")
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (out_dir / f"coffer-{args.board}.img.sha256").write_text(f"{digest}  {image.name}\n")
    size = image.stat().st_size
    log(f"{image}: {size / MiB:.1f} MiB ({size} bytes), kernel {abi}")
    log(f"sha256 {digest}")


if __name__ == "__main__":
    main()
