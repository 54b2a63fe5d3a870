"""The one table of logical-axis sharding rules.

Every parameter and every activation at a block boundary carries logical axis
names; this table maps them to mesh axes (`data`, `fsdp`, `tensor`). Change
sharding here, nowhere else.

How it is applied (ftgen/parallel/sharding.py): a name missing from this
table is an error for params (a typo would silently replicate a whole
model); a param dimension that its mesh axes do not divide (e.g. SmolLM2's 9
query / 3 kv heads on tensor=2, Gemma 3's single kv head) is replicated and
logged, keeping the other dimensions sharded. Activation constraints may be
uneven (XLA pads them). Tests check that every name the decoder uses, on
params and on activations, appears here.
"""

# Parameter axes.
#   vocab     vocabulary rows of the embedding / output projection
#   embed     model width d
#   q_heads   query heads N
#   kv_heads  key/value heads K
#   head_dim  per-head width H
#   mlp       MLP hidden width F
#   layers    stacked (scanned) layer axis L
#   norm      norm scale vectors (replicated)
# Activation axes.
#   batch, length, act_embed, act_heads, act_kv_heads, act_mlp, act_vocab,
#   cache_length; `head_dim` is also used on q/k/v activations.
LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    # Parameters: FSDP shards the model width, tensor parallelism the heads
    # and the MLP width.
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("norm", None),
    # Activations: the batch is split over data and fsdp.
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("cache_length", None),
)
