"""spawn - run an external command for every client connection (Postfix spawn(8)).

SYNOPSIS
    master.cf:  policyd-spf  unix  -  n  n  -  0  spawn
                    user=policyd-spf argv=/usr/bin/policyd-spf
    main.cf:    policyd-spf_time_limit = 3600
                smtpd_recipient_restrictions = ...,
                    check_policy_service unix:private/policyd-spf

DESCRIPTION
    The Postfix equivalent of inetd. For each connection accepted on the
    service's socket (unix or inet) it runs the command given by argv= with
    the rights of user= (mailsys.config.spawn_attributes), the connection
    as the command's standard input, output and error, as Postfix's
    spawn(8) does; the command talks to the client, spawn never reads or
    writes a byte of it (mailsys.runtime.spawn_command).

    The command gets the environment Postfix gives it: the
    $export_environment variables and PATH=/usr/bin:/bin, nothing else,
    and runs in $queue_directory. It is killed after
    $<service>_time_limit (default $command_time_limit, 1000s), where
    <service> is master.cf's first column ("policyd-spf_time_limit"), with
    the warning "ARGV0: process id PID: command time limit exceeded". A
    non-zero exit is logged as "command ARGV0 exit status N" or "command
    ARGV0 killed by signal N".

    Process limit. As Postfix's, a spawn process runs one command at a
    time: master.cf's process limit (column 7; 0 is no limit) is the most
    commands that run at once, and a client that finds them all busy waits
    in the socket's backlog.

    Bad attributes (unknown user, user root or $mail_owner, no argv=, ...)
    are fatal when the process starts, with Postfix's words: the master
    then logs "bad command startup -- throttling" and starts none for
    $service_throttle_time.

    mailsys runs without root by default; then the command runs as mailsys
    itself, whatever user= says (user= must still name an account that may
    run it).
"""

from __future__ import annotations

from mailsys.config.params import service_time_limit_name
from mailsys.config.spawn_attributes import parse_spawn_attributes
from mailsys.delivery.command import command_env
from mailsys.runtime import skeleton
from mailsys.runtime.fast_stream import FastStream
from mailsys.runtime.spawn_command import SpawnJob

# Postfix's spawn is a single_server: one client, one command, per process.
COMMANDS_PER_PROCESS = 1


def setup(ctx: skeleton.ServiceContext) -> SpawnJob:
    cfg = ctx.config
    attrs = parse_spawn_attributes(ctx.args, owner=cfg.mail_owner)
    try:
        time_limit = float(cfg[service_time_limit_name(ctx.service)])
    except KeyError:        # an inet service's "host:port" names no parameter
        time_limit = float(cfg.command_time_limit)
    env = command_env({}, tuple(cfg.export_environment), str(cfg.config_dir))
    return SpawnJob(attrs, time_limit, env, str(cfg.path("queue_directory")))


async def handle(stream: FastStream, ctx: skeleton.ServiceContext) -> None:
    await ctx.state.run(stream.socket)


def main() -> None:
    skeleton.run("spawn", handle, post_init=setup, concurrency=COMMANDS_PER_PROCESS)


if __name__ == "__main__":
    main()
