"""Repository contracts: the README Quickstart and CI agree.

The contract: docs/design.md#install-and-test-commands.
"""

import re


def _quickstart_commands(readme: str) -> list[str]:
  section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
  return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quickstart_has_exactly_two_commands(repo_root):
  commands = _quickstart_commands((repo_root / "README.md").read_text())
  assert len(commands) == 2, commands
  assert all("\n" not in c for c in commands), commands
  assert "pip install" in commands[0] and "launch/" in commands[0]
  assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command(repo_root):
  test_command = _quickstart_commands((repo_root / "README.md").read_text())[1]
  ci = (repo_root / ".ci" / "run").read_text()
  assert f"TEST_COMMAND='{test_command}'" in ci
