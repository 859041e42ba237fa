"""Read the example's results_summary.csv with pandas: success and cost by setting.

    python example_project/analysis.py

The summary is written once every config is done (see README.md).
"""

from pathlib import Path

import pandas as pd

SUMMARY = Path(__file__).parent / "output" / "experiment" / "results_summary.csv"

df = pd.read_csv(SUMMARY)
by_setting = df.groupby(["proposer", "temperature"])
print(by_setting[["success", "num_requests", "price"]].mean().round(4))
print(df.groupby("problem")["success"].mean().round(4))
print(f"total: {df['price'].sum():.4f} dollars for {df['num_requests'].sum()} requests")
