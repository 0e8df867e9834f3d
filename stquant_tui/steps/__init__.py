"""The wizard's steps, one widget each, all mounted in one ContentSwitcher."""
