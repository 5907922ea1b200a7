# Spack package for Stasis.  Copy packaging/spack/stasis/ into a Spack
# repository (e.g. `spack repo create site && cp -r ... site/packages/`),
# then `spack install stasis`.  Written to Spack's CMakePackage conventions;
# it cannot be built offline here (Spack fetches the tarball), so it is not
# exercised by CI.
from spack.package import *


class Stasis(CMakePackage):
    """Transparent checkpoint/restart of unmodified Linux programs, without
    root: a DMTCP-like tool for HPC batch jobs (Slurm launch-or-restart,
    signal and requeue), with same-pid restart through user namespaces."""

    homepage = "https://example.org/stasis"
    url = "https://example.org/stasis/stasis-0.1.0.tar.gz"
    git = "https://example.org/stasis.git"

    maintainers("stasis-developers")
    license("Apache-2.0")

    version("main", branch="main")
    version("0.1.0")

    variant("man", default=True, description="Build man pages from --help (help2man)")

    # x86_64 only for now: signal frames and the vDSO proxy are per-architecture.
    conflicts("target=aarch64:", msg="Stasis supports x86_64 only")
    conflicts("platform=darwin", msg="Stasis is Linux-only")

    depends_on("cmake@3.25:", type="build")
    depends_on("ninja", type="build")
    depends_on("pkgconfig", type="build")
    depends_on("help2man", type="build", when="+man")
    depends_on("zstd")
    depends_on("xxhash")
    depends_on("fmt")
    depends_on("cli11", type="build")
    depends_on("nlohmann-json", type="build")
    depends_on("googletest", type="test")

    generator("ninja")

    def cmake_args(self):
        return [self.define("BUILD_TESTING", self.run_tests)]

    def setup_run_environment(self, env):
        env.set("STASIS_ROOT", self.prefix)
