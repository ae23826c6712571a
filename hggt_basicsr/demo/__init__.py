"""The offline end-to-end demo (``hggt demo``): data from bundled photographs, training, evaluation, report.

Modules: :mod:`~hggt_basicsr.demo.enhancers` (four classical enhancers), :mod:`~hggt_basicsr.demo.annotators`
(simulated annotators), :mod:`~hggt_basicsr.demo.data` (the HGGT-layout dataset), :mod:`~hggt_basicsr.demo.report`
(report.md and comparison.png), :mod:`~hggt_basicsr.demo.pipeline` (the stages).
"""
