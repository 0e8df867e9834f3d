"""The wizard opens the services' configs of modes stquant does not run and flags only the mode (which
Review, like `stquant validate`, refuses)."""

from __future__ import annotations

import pytest
from tui_helpers import FAKE_ENGINE, ROOT, mount_form_steps, settle, wait_until

from stquant_tui.app import StquantApp

DEPLOYMENT = (
    ROOT.parent
    / "shared/st_configs/services@46924c0/image_classification/src/config_file_examples/deployment_config.yaml"
)


async def test_deployment_config_opens_and_only_its_mode_is_flagged():
    if not DEPLOYMENT.is_file():
        pytest.skip(f"the services' configs are not at {DEPLOYMENT.parent} (see ../shared/st_configs/README.md)")
    app = StquantApp(DEPLOYMENT, engine_cmd=FAKE_ENGINE)
    async with app.run_test(size=(80, 24)) as pilot:
        await mount_form_steps(app)
        await settle(pilot)
        invalid = [row.key for row in app.query(".-invalid") if hasattr(row, "key")]
        assert invalid == []
        hint = str(app.query_one("#quantization-hint").render())
        assert "deployment: stquant saves it but cannot run it" in hint
        await app.mount_step("review")
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None)
        assert str(app.query_one("#review-status").render()).startswith("✗ stquant validate: exit 2")
        assert [p.key for p in app.verdict.problems] == ["operation_mode"], app.verdict
