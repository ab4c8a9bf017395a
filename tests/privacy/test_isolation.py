import subprocess
import sys


def test_privacy_imports_neither_torch_nor_flwr():
    code = (
        "import sys, confide.privacy, confide.privacy.apply; "
        "import confide.privacy.pii_scan; "
        "bad = [m for m in ('torch', 'flwr', 'opacus', 'ray', 'typer') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_public_api_is_exported():
    from confide import privacy

    for name in privacy.__all__:
        assert hasattr(privacy, name), name
