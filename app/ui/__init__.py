"""Widgets and sections that several pages share: the sidebar, the model picker, predict-then-reveal questions, the
tour, presentation mode, the glossary, Compare, the frequency section, cached figures and pictures."""
