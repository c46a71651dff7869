"""Small pieces several test modules share."""


def nan_after(method_cls: type, steps: int) -> type:
    """A subclass of an SSL method whose loss turns NaN after `steps` forward calls (a diverging run)."""
    calls = {"n": 0}

    class Exploding(method_cls):
        def forward(self, x1, x2):
            calls["n"] += 1
            loss = super().forward(x1, x2)
            return loss * float("nan") if calls["n"] > steps else loss

    return Exploding
