import numpy as np
import pandas as pd

from coverage.classify.explain import explain, explain_frame


def test_a_row_taken_from_a_table_reads_as_the_table_does():
    # boolean columns: a row taken with .iloc holds numpy's booleans, a record Python's
    rows = pd.DataFrame({
        "class": ["unavailable", "served"], "reasons": ["2g_only", ""],
        "population": [1240.0, np.nan], "pop_covered_share": [0.38, 0.9],
        "pop_indoor_share": [0.12, 0.8], "best_tech": ["4G", None], "operators": [1, 0],
        "nearest_site_km": [9.24, 6.0], "nearest_site_tech": ["4G", "3G"],
        "behind_ridge": [True, False], "n_cov_tests": [6.0, 0.0], "k_cov_tests": [0.0, 0.0],
        "median_download_mbps": [np.nan, np.nan], "label_stable": [False, True]})
    assert isinstance(rows.iloc[0]["behind_ridge"], np.bool_)
    for lang in ("en", "vi"):
        table = explain_frame(rows, lang)
        assert [explain(rows.iloc[i], lang) for i in range(2)] == table
        assert [explain(r, lang) for r in rows.to_dict("records")] == table
    first = explain(rows.iloc[0], "en")
    assert "nearest 4G site 9.2 km, behind a ridge" in first and "near a threshold" in first
    assert "no tests, model only" in explain(rows.iloc[1], "en")
