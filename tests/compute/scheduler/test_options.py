from __future__ import annotations

import pytest

from chute.compute.scheduler import SECTIONS, SchedulerOptions
from chute.config import load
from chute.errors import ConfigError


def test_options_use_novas_names_and_defaults(tmp_path):
    conf_file = tmp_path / "api.conf"
    conf_file.write_text("[filter_scheduler]\nenabled_filters = ComputeFilter\n"
                         "ram_weight_multiplier = -1.5\n")
    options = SchedulerOptions.from_config(load(conf_file, SECTIONS))
    assert options.enabled_filters == ("ComputeFilter",)
    assert options.multipliers.ram == -1.5
    assert options.multipliers.image_cached == 0.2


def test_an_unknown_filter_stops_the_service_naming_the_option(tmp_path):
    conf_file = tmp_path / "api.conf"
    conf_file.write_text("[filter_scheduler]\nenabled_filters = ComputeFilter, RamFilter\n")
    with pytest.raises(ConfigError) as caught:
        load(conf_file, SECTIONS)
    assert "enabled_filters" in str(caught.value) and "RamFilter" in str(caught.value)
