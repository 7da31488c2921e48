"""Training somewhere other than this process: a SageMaker training job (``trainer=sagemaker``).

The job runs :mod:`recframe.remote.sagemaker_train`, the same Lightning fit the local train step
runs, so an artifact trained remotely is the artifact a local fit with the same seed writes.
"""
