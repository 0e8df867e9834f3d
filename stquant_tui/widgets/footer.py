"""The key bar: Textual's Footer, rebuilt once per batch of binding changes, and only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Keys = tuple[tuple[str, str, str, bool, str], ...]


def shown_keys(screen: Screen) -> Keys:
    """The keys a footer on `screen` shows: key, description, action, enabled, tooltip."""
    return tuple(
        (binding.key, binding.description, binding.action, enabled, tooltip)
        for _node, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show
    )


class KeyFooter(Footer):
    """A Footer that skips its rebuild when a change leaves the shown keys as they were, and rebuilds once for the
    changes made before its rebuild runs.

    Textual's Footer recomposes every key on each binding change; a step change in the wizard makes three (the step,
    the old field's blur, the new field's focus), and most focus changes (one field to the next) keep the same keys.
    Each rebuild restyles every key and lays the screen out again, over a slow SSH link too.
    """

    _shown: Keys | None = None  # the keys of the last rebuild
    _pending = False  # a rebuild is scheduled: it will show the bindings as they are when it runs

    def compose(self) -> ComposeResult:
        """Textual's keys, each created with the bar's `compact` already set: a FooterKey starts compact and its
        binding to the bar's value restyles it twice (class added on mount, removed by the binding) otherwise."""
        self._pending = False
        widgets = list(super().compose())
        self._shown = shown_keys(self.screen) if widgets else None
        for widget in widgets:
            if isinstance(widget, FooterKey):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget

    def bindings_changed(self, screen: Screen) -> None:
        if self._pending or shown_keys(screen) == self._shown:
            return
        self._pending = screen.app.app_focus and self.is_attached and screen is self.screen  # Footer rebuilds then
        super().bindings_changed(screen)
