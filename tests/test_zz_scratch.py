import pytest

CASES = [["--help"], ["cv.n_splits=1"], ["model=xgboost"], ["model=logistic", "data=iris"],
         ["data=iris", "model=knn", "plots=false", "refit=false", "cv.n_splits=2"]]


@pytest.mark.parametrize("args", CASES)
def test_same(cli, run_cli, args):
    a, b = cli(*args), run_cli(*args)
    print("SUB", a.returncode, repr(a.stdout[-600:]), repr(a.stderr[-600:]))
    print("INP", b.returncode, repr(b.stdout[-600:]), repr(b.stderr[-600:]))
    assert a.returncode == b.returncode
    assert a.stderr.splitlines()[:3] == b.stderr.splitlines()[:3]
