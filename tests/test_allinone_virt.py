"""`chute up` picks the libvirt driver where guests can run (libvirtd answers), the fake one
when asked; a kept chute-compute.conf keeps its driver."""

from __future__ import annotations

import configparser

from chute.allinone import libvirt_problem, write_configs
from tests.helpers import libvirt as lv


def compute_conf(lay) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(lay.conf("chute-compute"))
    return parser


def test_auto_uses_libvirt_where_libvirtd_answers(tmp_path):
    lv.ensure_libvirtd()
    assert libvirt_problem() is None
    conf = compute_conf(write_configs(tmp_path / "var"))
    assert conf["DEFAULT"]["compute_driver"] == "libvirt"
    assert conf["libvirt"]["virt_type"] == "kvm"
    assert conf["libvirt"]["allow_virt_type_fallback"] == "true"


def test_fake_when_asked_and_kept_afterwards(tmp_path):
    lay = write_configs(tmp_path / "var", compute_driver="fake")
    assert compute_conf(lay)["DEFAULT"]["compute_driver"] == "fake"
    assert compute_conf(write_configs(tmp_path / "var"))["DEFAULT"]["compute_driver"] == "fake"
