"""Prints a text table, as HPC benchmarks do (no JSON): a header and "size value" rows."""

print("# My Table")
print("# size      time [us]")
for size, value in ((1, 2.5), (2, 3.5), (4, 7.25)):
    print(f"{size:>6} {value:>14.2f}")
print("done")
