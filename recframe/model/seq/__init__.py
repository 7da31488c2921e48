"""Neural sequence models, one module per option: ``gru``, ``lstm``, ``sasrec``.

What they share: scoring and artifacts (:mod:`~recframe.model.seq.base`), typed training settings
(:mod:`~recframe.model.seq.settings`), session batching and negative sampling
(:mod:`~recframe.model.seq.data`), the Lightning fit (:mod:`~recframe.model.seq.training`, with
:mod:`~recframe.model.seq.cpu_memory` for CPU runs), padded-window training for SASRec and the LSTM
(:mod:`~recframe.model.seq.padded`), GRU4Rec's optimiser (:mod:`~recframe.model.seq.optim`), and
the plain ``nn.Module`` networks (:mod:`~recframe.model.seq.nets`).
"""
