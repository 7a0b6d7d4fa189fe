"""The model steps below the runtime: the torch work the stages ask for, and the thread it runs on.

``depth_steps`` is the protocol the stages call, ``rolling_depth_steps`` its one implementation on a
loaded model (``BatchedCalls``, ``RollingDepthSteps``), ``batched_steps`` and ``batcher`` the shared
model of a rig (one batcher thread for every stream's requests), ``model_thread`` the single thread
torch runs on, ``oracle_model`` the stand-in that answers with the true depth. This package imports
only ``pipeline`` and ``io_adapters``, never another part of ``stream``.
"""
