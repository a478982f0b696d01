"""The reference implementation to speed up: count the inversions of a list of integers."""


def count_inversions(values):
    """The number of pairs i < j with values[i] > values[j] (naive, O(n^2))."""
    count = 0
    n = len(values)
    for i in range(n):
        for j in range(i + 1, n):
            if values[i] > values[j]:
                count += 1
    return count
