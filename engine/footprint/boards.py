"""The model zoo's benchmark boards, their MCU's memory, core and clock, and whether a footprint fits.

Sizes are the datasheet totals of the MCU's internal SRAM (TCM included, backup SRAM excluded;
STM32N657: its "4.2 Mbytes" headline) and internal flash, in KiB. The STM32N657 has no internal
flash: its entry gives the board's external 1-Gbit octo-SPI NOR flash, where weights live there.
Fitting compares against the total; the code generator needs the activations in one contiguous
region, which can be smaller (e.g. 512 KiB AXI SRAM on STM32H743/H747), and code, runtime RAM
and the application come on top.

Clocks are the datasheet maximum CPU clock as the board is wired: STM32H747I-DISCO runs its
STM32H747 from the SMPS, which caps the Cortex-M7 at 400 MHz (480 MHz needs the LDO supply; the
model zoo's published times are at 400 MHz). STM32N657: 800 MHz Cortex-M55 (its NPU, which the
model zoo's N6 figures use, is not modelled, so no time is estimated for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.common.errors import ConfigError

if TYPE_CHECKING:  # the package imports this module
    from engine.footprint import Footprint


@dataclass(frozen=True)
class Board:
    """A benchmark board: its MCU, internal flash and SRAM (KiB), CPU core and clock (MHz, as wired)."""

    name: str
    mcu: str
    flash_kib: int
    ram_kib: int
    core: str
    mhz: int


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("STM32N6570-DK", "STM32N657X0H3Q", 131072, 4200, "Cortex-M55", 800),
        Board("STM32H747I-DISCO", "STM32H747XIH6", 2048, 1056, "Cortex-M7", 400),
        Board("STM32H7B3I-DK", "STM32H7B3LIH6Q", 2048, 1376, "Cortex-M7", 280),
        Board("STM32F469I-DISCO", "STM32F469NIH6", 2048, 384, "Cortex-M4", 180),
        Board("B-U585I-IOT02A", "STM32U585AII6Q", 2048, 784, "Cortex-M33", 160),
        Board("STM32L4R9I-DISCO", "STM32L4R9AII6", 2048, 640, "Cortex-M4", 120),
        Board("NUCLEO-H743ZI2", "STM32H743ZIT6", 2048, 1056, "Cortex-M7", 480),
        Board("STM32H735G-DK", "STM32H735IGK6", 1024, 560, "Cortex-M7", 550),
        Board("STM32F769I-DISCO", "STM32F769NIH6", 2048, 528, "Cortex-M7", 216),
        Board("NUCLEO-G474RE", "STM32G474RET6", 512, 128, "Cortex-M4", 170),
        Board("NUCLEO-F401RE", "STM32F401RET6", 512, 96, "Cortex-M4", 84),
        Board("STM32F746G-DISCO", "STM32F746NGH6", 1024, 336, "Cortex-M7", 216),
    )
}


def find_board(name: str) -> Board | None:
    """The board of that name (case-insensitive), or None."""
    return BOARDS.get(name) or next((b for b in BOARDS.values() if b.name.lower() == name.lower()), None)


def unknown_board(name: str, key: str) -> ConfigError:
    """The error for a board not in the table, listing the known ones."""
    return ConfigError(f"{key}: unknown board {name!r}; known boards: {', '.join(BOARDS)} (stquant boards)")


def boards_table() -> str:
    """The known boards with their MCU, flash, RAM, core and clock (what `stquant boards` prints)."""
    lines = [f"{'board':<18} {'MCU':<16} {'flash KiB':>10} {'RAM KiB':>8}  {'core':<11} {'MHz':>4}"]
    lines += [
        f"{b.name:<18} {b.mcu:<16} {b.flash_kib:>10} {b.ram_kib:>8}  {b.core:<11} {b.mhz:>4}" for b in BOARDS.values()
    ]
    return "\n".join(lines)


FITS, TIGHT, DOES_NOT_FIT = "fits", "fits only with in-place overlap (tight)", "does not fit"


def board_fit(board: str, fp: Footprint) -> dict[str, Any] | None:
    """Compare a footprint (an `engine.footprint.Footprint`) with a board; None when the board is not in the table.

    Keys: `board`, `mcu`, `core`, `mhz`, `flash_kib`, `ram_kib` (the board), `weights_fit`,
    `activations_fit` (bools, activations: the allocator's figure), `flash_headroom_kib`, `ram_headroom_kib`,
    `ram_upper_headroom_kib` (capacity minus weights / activations / their upper bound, negative when it does
    not fit), `flash_headroom_pct`, `ram_headroom_pct`, `ram_upper_headroom_pct` (the same in percent of the
    capacity), `verdict` (`fits`: even the upper bound fits; `fits only with in-place overlap (tight)`: only the
    allocator's figure fits; `does not fit`), `estimated_inference_ms` (None for a core the timing model
    does not cover).
    """
    from engine.footprint.timing import (
        inference_ms,  # here: the board table alone (the wizard) needs no footprint
    )

    spec = find_board(board)
    if spec is None:
        return None
    flash_left = spec.flash_kib - fp.weights_flash_kib
    ram_left = spec.ram_kib - fp.activation_ram_kib
    upper_left = spec.ram_kib - fp.activation_ram_upper_kib
    verdict = DOES_NOT_FIT if flash_left < 0 or ram_left < 0 else FITS if upper_left >= 0 else TIGHT
    return {
        "board": spec.name,
        "mcu": spec.mcu,
        "core": spec.core,
        "mhz": spec.mhz,
        "flash_kib": spec.flash_kib,
        "ram_kib": spec.ram_kib,
        "weights_fit": flash_left >= 0,
        "activations_fit": ram_left >= 0,
        "verdict": verdict,
        "flash_headroom_kib": round(flash_left, 2),
        "flash_headroom_pct": round(100 * flash_left / spec.flash_kib, 1),
        "ram_headroom_kib": round(ram_left, 2),
        "ram_headroom_pct": round(100 * ram_left / spec.ram_kib, 1),
        "ram_upper_headroom_kib": round(upper_left, 2),
        "ram_upper_headroom_pct": round(100 * upper_left / spec.ram_kib, 1),
        "estimated_inference_ms": inference_ms(fp.cycles_m7, spec.core, spec.mhz),
    }
