"""Plausible ways for training to go wrong, as wrong versions of cnnlab.train.fit.

``fit`` is given code, but the check of it is the test that everything the
problem set builds trains a network; these versions break the training itself.
"""


class _Wrapped:
    """A model whose optimizer sees other parameters, or other gradients, than it uses."""

    def __init__(self, model, copies=False, sign=1.0):
        self.model, self.sign = model, sign
        self.params = ({k: v.copy() for k, v in model.params.items()} if copies
                       else model.params)

    def loss_and_scores(self, x, y):
        loss, grads, scores = self.model.loss_and_scores(x, y)
        return loss, {k: self.sign * g for k, g in grads.items()}, scores

    def loss(self, x, y):
        return self.loss_and_scores(x, y)[:2]

    def predict(self, x, batch_size=1000):
        return self.model.predict(x, batch_size=batch_size)


def fit_with(copies=False, sign=1.0):
    def make(original):
        def fit(model, data, **kwargs):
            return original(_Wrapped(model, copies=copies, sign=sign), data, **kwargs)
        return fit
    return make


WRONG = {
    "train.fit": [
        ("updates copies of the parameters", fit_with(copies=True)),
        ("gradient ascent", fit_with(sign=-1.0)),
    ],
}

# The hint (a regular expression) each wrong version must get from check(name); where the
# check has none for it, what the plain description of the difference must say instead.
HINTS = {
    ("train.fit", "updates copies of the parameters"): r"the loss did not move from ln 10",
    ("train.fit", "gradient ascent"): r"the loss went up or became NaN",
}
