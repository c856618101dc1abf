"""The parameters a master.cf service has, and postconf's parameter classes (-C)."""

from mailsys.cli.postconf import param_class
from mailsys.config.params import TRANSPORT_SUFFIXES, param, service_parameter_names


def test_a_delivery_agent_service_has_the_per_transport_parameters():
    names = service_parameter_names("relay", "smtp")
    assert names == tuple(f"relay_{suffix}" for suffix in TRANSPORT_SUFFIXES)
    assert len(names) == 16 and all(param(name) is not None for name in names)


def test_pipe_and_spawn_services_have_a_time_limit():
    assert service_parameter_names("mypipe", "pipe")[-1] == "mypipe_time_limit"
    assert len(service_parameter_names("mypipe", "pipe")) == 17
    assert service_parameter_names("policyd-spf", "spawn") == ("policyd-spf_time_limit",)


def test_other_services_have_none():
    assert service_parameter_names("smtp", "smtpd") == ()
    assert service_parameter_names("qmgr", "qmgr") == ()
    # mailsys's per-transport names are lower case: none for "Relay".
    assert service_parameter_names("Relay", "smtp") == ()


def test_param_class():
    services = set(service_parameter_names("local", "local"))
    # A table parameter that is a master.cf service's is that service's (Postfix
    # keeps local_destination_concurrency_limit's default of 2, and calls it so).
    assert param_class("local_destination_concurrency_limit", services) == "service"
    assert param_class("local_destination_concurrency_limit", set()) == "builtin"
    assert param_class("myhostname", services) == "builtin"
    assert param_class("other_destination_rate_delay", services) == "service"
    assert param_class("my_restriction_class", services) == "user"
