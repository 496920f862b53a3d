"""One training run over several processes or hosts, on `tf.distribute.MultiWorkerMirroredStrategy`.

- `cluster`: this process's task from TF_CONFIG, joining the cluster, where each process writes.
- `shim`: the smallest patch that lets Keras 3's `fit` train under that strategy (upstream
  keras-team/keras#20585); applied on joining, and only while the bugs are there.
- `launch`: N processes of one run on this host (`python -m dlrecipes.multihost.launch`,
  `make train-distributed`).
"""
