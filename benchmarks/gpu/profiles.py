"""What one run of `python -m benchmarks.gpu` measures, and in how much time: the quick, full and dry-run profiles.

A profile names its device, its time budget (the whole run, and each part's own limit), the op cases it times and
the end-to-end purification runs. Parts run in PART_ORDER; a part that cannot get its time is skipped with the
reason recorded, so a run never overruns its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.cases import CASES, LEVELS, SHAPES, Case

# Larger than the CPU suite's shapes: on an H200 a 12 MB tensor is a fifth of the L2 and a few µs of traffic, so
# launch overhead, not bandwidth, would be measured. 100 MB per tensor, and 250 MB for the K = 20 outputs.
# "tiny": the dry run's.
GPU_SHAPES = {"imagenet-large": (128, 3, 256, 256), "cifar-large": (1024, 3, 32, 32), "tiny": (4, 3, 8, 8)}


@dataclass(frozen=True)
class GPUCase(Case):
    """A case of `benchmarks.cases` that may also use the GPU_SHAPES."""

    @property
    def shape(self) -> tuple[int, ...]:
        return GPU_SHAPES[self.shape_name] if self.shape_name in GPU_SHAPES else SHAPES[self.shape_name]


# Each op once at a large shape, most important first (issue: every op at >= 80% of the copy bandwidth).
LARGE_CASES = (
    GPUCase("noise_inject", "imagenet-large"),
    GPUCase("reverse_step", "imagenet-large"),
    GPUCase("score_norm", "imagenet", LEVELS),
    GPUCase("noise_inject_levels", "cifar-large", LEVELS),
    GPUCase("vp_sde_step", "imagenet-large"),
    GPUCase("noise_inject", "imagenet-large", noise_given=True),
    GPUCase("reverse_step", "imagenet-large", noise_given=True),
)
TINY_CASES = (GPUCase("noise_inject", "tiny"), GPUCase("reverse_step", "tiny", noise_given=True))

# Ops that the CUDA C++ extension (ssni_kernels._C_cuda, csrc/cuda/bindings.cpp) implements; Triton serves the rest.
CUDA_CPP_OPS = ("noise_inject", "score_norm")


@dataclass(frozen=True)
class PipelineRun:
    """One model's end-to-end purification benchmark.

    model: registry name; overrides: build() arguments (tiny stand-ins in the dry run); images: N, also the
    network batch of every method; t_star, levels (K), bias (b): SSNI-N's settings; dtypes: "fp32"/"fp16", in the
    order they run (the more important first, since a run out of time skips what is left).
    """

    key: str
    model: str
    resolution: int
    images: int
    t_star: int
    levels: int
    bias: int = 5
    dtypes: tuple[str, ...] = ("fp16", "fp32")
    overrides: tuple[tuple[str, object], ...] = ()


ADM256 = PipelineRun("adm256", "imagenet-adm-256-uncond", 256, images=8, t_star=150, levels=50)
DDPMPP = PipelineRun("ddpmpp", "cifar10-ddpmpp-deep-continuous", 32, images=128, t_star=100, levels=20)
TINY_ADM = (("image_size", 8), ("num_channels", 32), ("num_res_blocks", 1), ("channel_mult", "1,2"),
            ("attention_resolutions", "4"), ("num_head_channels", 32))  # fmt: skip
TINY_NCSNPP = (("image_size", 8), ("nf", 16), ("num_res_blocks", 1), ("ch_mult", (1, 2)), ("attn_resolutions", (4,)))

# (part kind, variant) in the order they run. The CUDA C++ parts come after the Triton ones so that the extension
# build (in the background from the start) has finished; the end-to-end parts last, on an otherwise idle machine.
PART_ORDER = (
    ("correctness", "triton"),
    ("ops", "triton"),
    ("correctness", "cuda"),
    ("ops", "cuda"),
    ("pipeline", "adm256"),
    ("pipeline", "ddpmpp"),
)

# The GPU correctness tests per SSNI_CUDA_BACKEND (tests/ paths; each runs on CUDA when there is one).
TRITON_TESTS = (
    "tests/ssni_kernels/test_triton_noise.py",
    "tests/ssni_kernels/test_triton_philox.py",
    "tests/ssni_kernels/test_triton_score_norm.py",
    "tests/ssni_kernels/test_triton_steps.py",
    "tests/ssni_kernels/test_triton_registration.py",
    "tests/ssni_kernels/test_device_ops.py",
    "tests/ssni/purify/test_device_purify.py",
    "tests/models/test_vectors_on_device.py",
)
CUDA_CPP_TESTS = ("tests/ssni_kernels/test_cuda_kernels.py", "tests/ssni_kernels/test_device_ops.py")
# The dry run's pytest: a Triton test in the interpreter and the device tests on the CPU (the plumbing only).
DRY_RUN_TESTS = (
    "tests/ssni_kernels/test_triton_philox.py::test_known_answer_vector",
    "tests/ssni_kernels/test_device_ops.py::test_generated_noise_is_the_cpu_stream",
    "tests/ssni/purify/test_device_purify.py::test_stream_gpu_options_on_cuda",
)


@dataclass(frozen=True)
class Profile:
    """One way to run the benchmark. budget_s: the whole run (None: unlimited); limits_s: each part's own limit
    (seconds, by part kind and variant; None: unlimited); op_impls: implementations timed per case (see
    benchmarks.cases); repeats: timed runs per end-to-end method (median); kernels: "fused" (the ssni ops) and
    optionally "reference" (the PyTorch reference registered for CUDA instead, end to end)."""

    name: str
    device: str
    budget_s: float | None
    limits_s: dict[tuple[str, str], float | None]
    op_cases: tuple[Case, ...]
    op_impls: tuple[str, ...]
    pipelines: tuple[PipelineRun, ...]
    repeats: int = 1
    kernels: tuple[str, ...] = ("fused",)
    tests: dict[str, tuple[str, ...]] = field(default_factory=dict)
    build_extensions: bool = True

    def limit(self, kind: str, variant: str) -> float | None:
        return self.limits_s.get((kind, variant))


QUICK = Profile(
    name="quick",
    device="cuda",
    # 7 min 35 s for the parts, inside the 8 minutes the device check is sized for (the parent's own start-up and
    # the final report take a few seconds more).
    budget_s=455,
    limits_s={
        ("correctness", "triton"): 70,
        ("ops", "triton"): 100,
        ("correctness", "cuda"): 30,
        ("ops", "cuda"): 25,
        ("pipeline", "adm256"): 150,
        ("pipeline", "ddpmpp"): 55,
    },
    op_cases=LARGE_CASES,
    op_impls=("ssni", "eager", "compiled"),
    pipelines=(ADM256, DDPMPP),
    tests={"triton": TRITON_TESTS, "cuda": CUDA_CPP_TESTS},
)

FULL = Profile(
    name="full",
    device="cuda",
    budget_s=None,
    limits_s={},
    op_cases=tuple(GPUCase(c.op, c.shape_name, c.levels, c.noise_given) for c in CASES) + LARGE_CASES,
    op_impls=("ssni", "eager", "compiled", "reference"),
    pipelines=(
        PipelineRun("adm256", ADM256.model, 256, images=16, t_star=150, levels=50),
        PipelineRun("ddpmpp", DDPMPP.model, 32, images=256, t_star=100, levels=20),
    ),
    repeats=3,
    kernels=("fused", "reference"),
    tests={"triton": TRITON_TESTS, "cuda": CUDA_CPP_TESTS},
)

DRY_RUN = Profile(
    name="dry-run",
    device="cpu",
    budget_s=300,
    limits_s={
        ("correctness", "triton"): 120,
        ("ops", "triton"): 60,
        ("pipeline", "adm256"): 60,
        ("pipeline", "ddpmpp"): 60,
    },
    op_cases=TINY_CASES,
    op_impls=("ssni", "eager", "compiled"),
    pipelines=(
        PipelineRun("adm256", ADM256.model, 8, images=2, t_star=2, levels=2, bias=1, overrides=TINY_ADM),
        PipelineRun("ddpmpp", DDPMPP.model, 8, images=2, t_star=2, levels=2, bias=1, overrides=TINY_NCSNPP),
    ),
    tests={"triton": DRY_RUN_TESTS},
    build_extensions=False,
)

PROFILES = {p.name: p for p in (QUICK, FULL, DRY_RUN)}
