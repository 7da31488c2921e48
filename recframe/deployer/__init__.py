"""Deployers: ship a model artifact behind an endpoint that answers the one serving contract.

``local`` (uvicorn on 127.0.0.1), ``sagemaker`` (a SageMaker real-time endpoint), ``seldon``
(MLServer locally, Seldon Core manifests for Kubernetes) and ``none``. All of them serve
:class:`~recframe.deployer.predictor.Predictor`; heavy dependencies (boto3, mlserver) are imported
only when their deployer runs.
"""
