"""The serving level: a model deployed as a pool of inference engines, loaded by MLPerf
LoadGen with realistic requests, judged against a tail-latency bound.

``query_sizes`` (how many items a request carries) and ``config`` (the load and the
deployment) describe a point; ``library`` (requests made ahead, in shared memory),
``engine``, ``pool`` and ``scheduler`` are the system under test; ``loadgen_run`` drives
LoadGen and reads its verdict; ``search`` finds the latency-bounded throughput of a
deployment and tunes the deployment (DeepRecSched's hill climb). The collector is
:mod:`recstack.collect.serving`.
"""
