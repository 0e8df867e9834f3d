"""The key bar: Textual's Footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    """A Footer that skips its rebuild when a focus change leaves the shown keys as they were.

    Textual's Footer recomposes every key on each focus change; in the wizard most focus changes (one field to the
    next) keep the same keys, and the rebuild restyles every key over a slow SSH link for nothing.
    """

    _shown: tuple[tuple[str, str, str, bool, str], ...] | None = None

    def compose(self) -> ComposeResult:
        """Textual's keys, each created with the bar's `compact` already set: a FooterKey starts compact and its
        binding to the bar's value restyles it twice (class added on mount, removed by the binding) otherwise."""
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget

    def bindings_changed(self, screen: Screen) -> None:
        shown = tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for _node, binding, enabled, tooltip in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._shown:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown = shown  # the rebuild below will show these
        super().bindings_changed(screen)
