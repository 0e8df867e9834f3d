"""The model zoo's benchmark boards, their MCU's memory, and whether a footprint fits.

Sizes are the datasheet totals of the MCU's internal SRAM (TCM included, backup SRAM excluded;
STM32N657: its "4.2 Mbytes" headline) and internal flash, in KiB. The STM32N657 has no internal
flash: its entry gives the board's external 1-Gbit octo-SPI NOR flash, where weights live there.
Fitting compares against the total; the code generator needs the activations in one contiguous
region, which can be smaller (e.g. 512 KiB AXI SRAM on STM32H743/H747), and code, runtime RAM
and the application come on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError
from engine.footprint import Footprint


@dataclass(frozen=True)
class Board:
    name: str
    mcu: str
    flash_kib: int
    ram_kib: int


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("STM32N6570-DK", "STM32N657X0H3Q", 131072, 4200),
        Board("STM32H747I-DISCO", "STM32H747XIH6", 2048, 1056),
        Board("STM32H7B3I-DK", "STM32H7B3LIH6Q", 2048, 1376),
        Board("STM32F469I-DISCO", "STM32F469NIH6", 2048, 384),
        Board("B-U585I-IOT02A", "STM32U585AII6Q", 2048, 784),
        Board("STM32L4R9I-DISCO", "STM32L4R9AII6", 2048, 640),
        Board("NUCLEO-H743ZI2", "STM32H743ZIT6", 2048, 1056),
        Board("STM32H735G-DK", "STM32H735IGK6", 1024, 560),
        Board("STM32F769I-DISCO", "STM32F769NIH6", 2048, 528),
        Board("NUCLEO-G474RE", "STM32G474RET6", 512, 128),
        Board("NUCLEO-F401RE", "STM32F401RET6", 512, 96),
        Board("STM32F746G-DISCO", "STM32F746NGH6", 1024, 336),
    )
}


def find_board(name: str) -> Board | None:
    """The board of that name (case-insensitive), or None."""
    return BOARDS.get(name) or next((b for b in BOARDS.values() if b.name.lower() == name.lower()), None)


def unknown_board(name: str, key: str) -> ConfigError:
    """The error for a board not in the table, listing the known ones."""
    return ConfigError(f"{key}: unknown board {name!r}; known boards: {', '.join(BOARDS)} (stquant boards)")


def boards_table() -> str:
    """The known boards with their MCU, flash and RAM (what `stquant boards` prints)."""
    lines = [f"{'board':<18} {'MCU':<16} {'flash KiB':>10} {'RAM KiB':>8}"]
    lines += [f"{b.name:<18} {b.mcu:<16} {b.flash_kib:>10} {b.ram_kib:>8}" for b in BOARDS.values()]
    return "\n".join(lines)


def board_fit(board: str, fp: Footprint) -> dict | None:
    """Compare a footprint with a board's memory; None when the board is not in the table."""
    spec = find_board(board)
    if spec is None:
        return None
    return {
        "board": spec.name,
        "flash_kib": spec.flash_kib,
        "ram_kib": spec.ram_kib,
        "weights_fit": fp.weights_flash_kib <= spec.flash_kib,
        "activations_fit": fp.activation_ram_kib <= spec.ram_kib,
    }
