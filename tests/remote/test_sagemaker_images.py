"""Container images through the sagemaker SDK's table: the URIs the SDK's own JSON gives, one-line
errors for what it does not list, the override kept, and no network call on the way."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("sagemaker.core.image_uris")

from recframe.deployer.sagemaker import SageMakerDeployer  # noqa: E402
from recframe.interfaces import ConfigError  # noqa: E402
from recframe.remote.sagemaker_job import SageMakerSettings  # noqa: E402
from recframe.sagemaker_images import client_torch, pytorch_image_uri  # noqa: E402
from tests.helpers.remote_kit import ROOT  # noqa: E402
from tests.helpers.sagemaker_table import expected_uri, newest_listed, table  # noqa: E402
from tests.test_no_network import outbound_addresses  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/recframe"
REGIONS = ["us-east-1", "eu-west-1", "me-south-1", "ap-east-1", "cn-north-1", "us-gov-west-1"]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("instance_type", ["ml.m5.large", "ml.g5.xlarge"])
@pytest.mark.parametrize("scope", ["training", "inference"])
def test_the_image_is_the_one_the_sdk_table_lists(region, instance_type, scope):
    got = pytorch_image_uri(region, instance_type, scope, "x")
    assert got == expected_uri(region, instance_type, scope)
    pinned = pytorch_image_uri(region, instance_type, scope, "x", framework_version="2.5.1", py_version="py311")
    assert pinned == expected_uri(region, instance_type, scope, "2.5.1", "py311")


def test_an_unlisted_torch_falls_back_to_the_newest_listed_release_and_says_so(caplog):
    listed = [v for v in table()["training"]["versions"] if v.count(".") == 2]
    with caplog.at_level(logging.INFO, logger="recframe"):
        uri = pytorch_image_uri("eu-west-1", "ml.g5.xlarge", "training", "trainer.sagemaker")
    assert f":{newest_listed('training')}-gpu-" in uri
    if client_torch() not in listed:  # torch here is newer than the SDK's table
        assert f"torch {client_torch()} is installed" in caplog.text
        assert f"is {newest_listed('training')}: using it" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"region": "xx-mars-1"}, "trainer.sagemaker.region='xx-mars-1'"),
        ({"framework_version": "9.9.9"}, "trainer.sagemaker.framework_version='9.9.9'"),
        ({"framework_version": "2.6.0", "py_version": "py27"}, "trainer.sagemaker.py_version='py27'"),
        ({"instance_type": "m5.large"}, "trainer.sagemaker.instance_type='m5.large'"),
        ({"region": None}, "trainer.sagemaker.region is not set"),
    ],
)
def test_what_the_sdk_does_not_list_is_one_config_line(kwargs, setting):
    args = {"region": "us-east-1", "instance_type": "ml.g5.xlarge", **kwargs}
    with pytest.raises(ConfigError) as e:
        pytorch_image_uri(args.pop("region"), args.pop("instance_type"), "training", "trainer.sagemaker", **args)
    message = str(e.value)
    assert setting in message and "\n" not in message
    assert any(fix in message for fix in ("image_uri", "AWS_DEFAULT_REGION", "such as ml."))  # and how to fix it


def test_the_trainer_and_the_deployer_look_up_their_scope_and_keep_the_override(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    s = SageMakerSettings(role_arn=ROLE, bucket="b", region="eu-west-1", instance_type="ml.g4dn.xlarge")
    assert s.image() == expected_uri("eu-west-1", "ml.g4dn.xlarge", "training")
    own = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1"
    assert SageMakerSettings(role_arn=ROLE, bucket="b", image_uri=own).image() == own
    with pytest.raises(ConfigError, match="trainer.sagemaker.region is not set"):
        SageMakerSettings(role_arn=ROLE, bucket="b").check()  # no region anywhere: before any upload

    deployer = SageMakerDeployer(region="ap-east-1", role_arn=ROLE, bucket="b", instance_type="ml.c5.xlarge")
    assert deployer.resolved_image_uri() == expected_uri("ap-east-1", "ml.c5.xlarge", "inference")
    assert SageMakerDeployer(region="ap-east-1", image_uri=own).resolved_image_uri() == own
    with pytest.raises(ConfigError) as e:
        SageMakerDeployer(region="xx-mars-1", role_arn=ROLE, bucket="b").check()  # before training
    assert str(e.value).startswith("invalid config deployer.region='xx-mars-1'") and "\n" not in str(e.value)


LOOKUP = """
from recframe.sagemaker_images import pytorch_image_uri
print(pytorch_image_uri("eu-west-1", "ml.g5.xlarge", "training", "t"))
print(pytorch_image_uri("cn-north-1", "ml.m5.large", "inference", "d"))
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_the_lookup_connects_nowhere_even_without_region_credentials_or_metadata_opt_out(tmp_path):
    trace = tmp_path / "trace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, PYTHONPATH=str(ROOT))
    cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), sys.executable, "-c", LOOKUP]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [
        expected_uri("eu-west-1", "ml.g5.xlarge", "training"),
        expected_uri("cn-north-1", "ml.m5.large", "inference"),
    ]
    assert outbound_addresses(trace.read_text()) == set()
