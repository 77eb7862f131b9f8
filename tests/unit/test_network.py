"""Addresses named the ways Parsl names them, resolved on this host (loopback and the routing table only)."""

import pytest

from compute_endpoint.config import load_yaml_text
from compute_endpoint.config.network import AddressError, AddressSpec, address_by_interface, address_by_route


def test_an_interface_resolves_to_its_address():
    assert address_by_interface("lo") == "127.0.0.1"


def test_a_missing_interface_names_the_ones_this_host_has():
    with pytest.raises(AddressError, match=r"no IPv4 address on interface 'nosuch0'.*its interfaces are: .*\blo\b"):
        address_by_interface("nosuch0")


def test_the_default_route_leads_to_its_interfaces_address(tmp_path):
    table = tmp_path / "route"
    table.write_text("Iface\tDestination\tGateway\tFlags\n"
                     "lo\t0000007F\t00000000\t0001\n"
                     "lo\t00000000\t0100007F\t0003\n")
    assert address_by_route(str(table)) == "127.0.0.1"


def test_no_default_route_says_what_to_write_instead(tmp_path):
    table = tmp_path / "route"
    table.write_text("Iface\tDestination\tGateway\tFlags\nlo\t0000007F\t00000000\t0001\n")
    with pytest.raises(AddressError, match="no default route; name the interface instead"):
        address_by_route(str(table))


def test_a_config_keeps_what_it_asked_for_and_resolves_it_at_load():
    config = load_yaml_text("engine:\n  address: {type: address_by_interface, ifname: lo}\n", "config.yaml")
    assert config.engine.address == "127.0.0.1"
    assert config.engine.address_spec == AddressSpec("address_by_interface", "lo")
    config.engine.check_address()


def test_an_unresolvable_address_passes_the_load_and_fails_the_start():
    config = load_yaml_text("engine:\n  address: {type: address_by_interface, ifname: ib9}\n", "config.yaml")
    assert config.engine.address_problem and "ib9" in config.engine.address_problem
    with pytest.raises(Exception, match="engine.address: address_by_interface"):
        config.engine.check_address()
