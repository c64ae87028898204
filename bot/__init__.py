"""The `/holdspace` Slack slash command: signature check, parsing, one handler per subcommand."""
