"""One command for a GPU machine: the GPU correctness tests, the op timings and the end-to-end purification
benchmark, each part within its own time limit, into one JSON and one Markdown file (the table is printed too).

    python -m benchmarks.gpu --quick OUT_DIR      # <= 8 minutes on an H200 (parts' budget 7 min 35 s)
    python -m benchmarks.gpu OUT_DIR              # full sizes, no time limits (~30 min)
    python -m benchmarks.gpu --dry-run OUT_DIR    # CPU, tiny sizes: every path that runs without CUDA (CI test)

Runs from a checkout (PYTHONPATH=.; no install needed) with whatever torch/triton the machine has. Parts, in
order (benchmarks/gpu/profiles.py: sizes and limits):
1. correctness (triton): pytest of the Triton kernel tests and the device tests on CUDA: every op against the
   reference (float32/float16/bfloat16, generated noise, a step word per sample), batch invariance (bit-exact),
   the Philox words bit-exact against the CPU stream, torch.compile of the ops, purification on CUDA against the
   CPU, the streaming engine's CUDA graph / float16 / torch.compile paths, the ADM (float16 torso) and NCSN++
   reference vectors on CUDA.
2. ops (triton): each op at a large shape, public op vs eager PyTorch vs torch.compile, against the measured copy
   bandwidth (benchmarks/gpu/ops.py).
3. correctness (cuda), ops (cuda): the same with SSNI_CUDA_BACKEND=cuda, when ssni_kernels._C_cuda loads or could
   be built (a background `setup.py build_ext` started at the beginning: benchmarks/gpu/extensions.py).
4. pipeline (adm256), pipeline (ddpmpp): end-to-end purification images/s, network evaluations per image and the
   time outside the network, fp16 and fp32, constant t* vs SSNI-N active-only / streamed / streamed + CUDA graph
   (benchmarks/gpu/pipeline.py); the headline is ADM-256 fp16 SSNI-N at t* = 150, K = 50.
Whatever does not fit its limit is skipped (or stopped) with the reason recorded; the run never overruns.
"""
