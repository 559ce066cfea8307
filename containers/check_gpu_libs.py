"""Check that the GPU image's CUDA libraries satisfy every NEEDED entry of mxnet-cu112's libmxnet.so.

Runs without a GPU: it asks the dynamic loader (`ldd`) to resolve libmxnet.so and everything it
pulls in, and fails if any library is missing except libcuda.so.1 (the driver's, mounted by the
NVIDIA container toolkit at run time), and the libraries opened later with dlopen (DLOPEN_LIBS)
with everything they need. It also checks that each CUDA library comes from the
PyPI nvidia-*-cu11 wheels (site-packages/nvidia/*/lib), i.e. the loader configuration works.

    python3 check_gpu_libs.py                      # inside the GPU image (also run by its build)
    python3 check_gpu_libs.py --wheelhouse DIR     # on this machine, from the pinned wheels

Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DRIVER_LIBS = {"libcuda.so.1"}  # provided by the host's driver, never by the image
# What libmxnet.so of mxnet-cu112 1.9.1 needs from CUDA 11 (its NEEDED entries, read with ldd);
# any CUDA 11.x runtime serves (minor-version compatibility); each must resolve to a wheel.
CUDA_LIBS = ("libcudart.so.11.0", "libcublas.so.11", "libcufft.so.10", "libcusolver.so.11", "libcurand.so.10",
             "libnvrtc.so.11.2", "libnvToolsExt.so.1", "libcudnn.so.8", "libnccl.so.2")
# Opened at run time with dlopen (not in any NEEDED list, so ldd of libmxnet.so never sees them):
# cuDNN 8 loads its sub-libraries on first use, nvrtc loads its builtins when it compiles.
DLOPEN_LIBS = ("libcudnn_ops_infer.so.8", "libcudnn_ops_train.so.8", "libcudnn_cnn_infer.so.8",
               "libcudnn_cnn_train.so.8", "libcudnn_adv_infer.so.8", "libcudnn_adv_train.so.8",
               "libnvrtc-builtins.so.11.8")
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.+?)(?:\s+\(0x[0-9a-f]+\))?$")


def resolve(library: Path, library_path: str | None = None) -> dict[str, str]:
    """soname -> resolved path ('not found' when missing) for the library and all it pulls in."""
    env = dict(os.environ)
    if library_path:
        env["LD_LIBRARY_PATH"] = library_path
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True, env=env, check=False).stdout
    return {m.group(1): m.group(2) for line in out.splitlines() if (m := LDD_LINE.match(line))}


def problems(resolved: dict[str, str]) -> list[str]:
    """What is wrong: missing libraries (but the driver's) and CUDA libraries not from the wheels."""
    found = []
    for soname, path in sorted(resolved.items()):
        if path == "not found" and soname not in DRIVER_LIBS:
            found.append(f"{soname}: not found")
    for soname in CUDA_LIBS:
        path = resolved.get(soname, "not needed")
        if path in ("not found", "not needed") or "/nvidia/" not in path:
            found.append(f"{soname}: {path} (expected from site-packages/nvidia/*/lib)")
    return found


def loader_paths(library_path: str | None) -> dict[str, str]:
    """soname -> path the loader would dlopen: LD_LIBRARY_PATH dirs (wheelhouse), else ldconfig's cache."""
    if library_path:
        return {p.name: str(p) for d in library_path.split(":") for p in Path(d).glob("*.so*")}
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    return {m.group(1): m.group(2) for line in out.splitlines() if (m := re.match(r"^\s*(\S+) \(.*\) => (\S+)$", line))}


def dlopen_problems(library_path: str | None) -> list[str]:
    """What is wrong with the dlopen'd libraries: not findable by the loader, or a dependency missing."""
    found, paths = [], loader_paths(library_path)
    for soname in DLOPEN_LIBS:
        path = paths.get(soname)
        if path is None:
            found.append(f"{soname}: not found (opened with dlopen at run time)")
            continue
        print(f"{soname} => {path} (dlopen)")
        missing = [s for s, p in resolve(Path(path), library_path).items() if p == "not found" and s not in DRIVER_LIBS]
        found += [f"{soname}: needs {s}, not found" for s in missing]
    return found


def installed_libmxnet() -> tuple[Path, str | None]:
    """libmxnet.so of the installed mxnet (found without importing it: that needs libcuda)."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None or spec.origin is None:
        sys.exit("check_gpu_libs: mxnet is not installed here")
    return Path(spec.origin).parent / "libmxnet.so", None


def unpacked_libmxnet(wheelhouse: Path, into: Path) -> tuple[Path, str]:
    """Unpack libmxnet.so (+ its bundled libs) and the nvidia wheels' libs; return it and the path."""
    wheels = sorted(wheelhouse.glob("mxnet_cu112-*.whl")) + sorted(wheelhouse.glob("nvidia_*.whl"))
    if not wheels or not wheels[0].name.startswith("mxnet_cu112"):
        sys.exit(f"check_gpu_libs: no mxnet_cu112 wheel in {wheelhouse} (make wheelhouse VARIANT=gpu)")
    members = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            members[wheel] = [i for i in zf.infolist() if ".so" in Path(i.filename).name]
    need_gb = sum(i.file_size for infos in members.values() for i in infos) / 1e9
    for wheel, infos in members.items():
        try:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(into, infos)
        except OSError as err:
            sys.exit(f"check_gpu_libs: cannot unpack {wheel.name} into {into} ({err.strerror}); the wheels' "
                     f"libraries need {need_gb:.1f} GB there (TMPDIR= picks another folder)")
    lib_dirs = sorted(str(p) for p in (into / "nvidia").glob("*/lib"))
    return into / "mxnet" / "libmxnet.so", ":".join(lib_dirs)


def main(argv: list[str] | None = None) -> int:
    """Resolve, report one line per library, exit 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path, help="check the wheels in DIR instead of the installed mxnet")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        libmxnet, library_path = (unpacked_libmxnet(args.wheelhouse, Path(tmp)) if args.wheelhouse
                                  else installed_libmxnet())
        if not libmxnet.is_file():
            sys.exit(f"check_gpu_libs: {libmxnet} does not exist")
        resolved = resolve(libmxnet, library_path)
        late = dlopen_problems(library_path)
    if not resolved:
        sys.exit(f"check_gpu_libs: ldd could not read {libmxnet}")
    for soname in CUDA_LIBS:
        print(f"{soname} => {resolved.get(soname, 'not needed')}")
    found = problems(resolved) + late
    for line in found:
        print(f"PROBLEM {line}", file=sys.stderr)
    where = args.wheelhouse or "this image"
    print(f"check_gpu_libs: {len(resolved)} libraries resolved for libmxnet.so ({where}), "
          f"{len(found)} problem(s); libcuda.so.1 comes from the driver")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
