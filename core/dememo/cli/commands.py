"""The subcommands of ``dememo-bench``: name → (module under ``dememo.cli``, one line of help)."""

COMMANDS = {
    "new": ("new", "new FAMILY NAME: an installable distribution of a new plugin to start a method from"),
    "plan": ("plan", "what a run would do: cells per track, dataset and forget set, how many are cached, its cost"),
    "export": ("export", "the original model and splits of one cell, for unlearning in your own code"),
    "eval": ("eval", "your own unlearned model through the suite's attacks and metrics, as a row of its own"),
    "suite": ("suite", "suite export NAME DIR: copy a shipped suite (with its tuning file) to edit"),
    "tune": ("tune", "choose unlearners' hyper-parameters by the suite's selection protocol"),
    "report": ("report", "figures and tables of a results directory as one HTML page"),
    "submit": ("submit", "a leaderboard bundle of your plugin's rows"),
    "verify": ("verify", "check a bundle, and re-run some of its cells"),
    "leaderboard": ("leaderboard", "build the public board from verified bundles"),
}


def help_text() -> str:
    """The subcommands as ``dememo-bench --help`` lists them."""
    width = max(map(len, COMMANDS)) + 2
    lines = ["subcommands (dememo-bench COMMAND --help for each):"]
    lines += [f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)
