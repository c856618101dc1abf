"""import_environment: what the master keeps of its environment (Postfix clean_env())."""

from mailsys.runtime.environment import imported

DEFAULT = ("MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE "
           "POSTLOG_HOSTNAME").split()


def test_only_listed_names_stay_and_name_value_sets():
    # Postfix 3.7.11 started with FOO=bar LANG=de_DE.UTF-8 TZ=Europe/Berlin:
    # its pipe command saw LANG=C and TZ=Europe/Berlin, and no FOO.
    env = {"FOO": "bar", "LANG": "de_DE.UTF-8", "TZ": "Europe/Berlin", "HOME": "/root"}
    assert imported(env, DEFAULT) == {"TZ": "Europe/Berlin", "LANG": "C"}
    assert imported(env, ["FOO", "LANG"]) == {"FOO": "bar", "LANG": "de_DE.UTF-8"}
    assert imported(env, []) == {}


def test_the_interpreters_variables_stay():
    assert imported({"PYTHONPATH": "/src", "PATH": "/bin"}, ["TZ"]) == {"PYTHONPATH": "/src"}
