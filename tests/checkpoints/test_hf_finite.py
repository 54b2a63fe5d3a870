"""The HF export refuses non-finite weights (docs/design.md#reliability)."""

import jax
import ml_dtypes
import numpy as np
import pytest

from ftgen.checkpoints import hf
from ftgen.models.tiny import tiny_config, tiny_params


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_before_writing(tmp_path, dtype, bad):
  config = tiny_config("llama")
  params = jax.tree.map(lambda x: np.asarray(x).astype(dtype),
                        tiny_params(config, seed=1))
  params["final_norm"]["scale"][3] = bad
  params["embedder"]["embedding"][0, :2] = bad
  out = tmp_path / "export"
  with pytest.raises(hf.CheckpointError) as e:
    hf.save_hf(out, config, params)
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith(f"refusing export to {out}: 2 of ")
  assert "values of embedder/embedding are not finite (and 1 more tensors)" in (
      message)
  assert not out.exists()
  # The same weights, finite, export.
  params["final_norm"]["scale"][3] = 1
  params["embedder"]["embedding"][0, :2] = 0
  hf.save_hf(out, config, params)
  assert (out / "model.safetensors").is_file()
