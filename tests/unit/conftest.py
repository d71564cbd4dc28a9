import pytest
import salt.utils.yaml


@pytest.fixture
def defaults(defaults_text):
    return salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
