"""`swergio-al label examples/reviews/reviews.csv --text text --answer
choice:positive,negative`, in Python: README.md. Run `swergio-al serve` first."""

# --8<-- [start:loop]
import asyncio
import os

from swergio_al.feedback.pool import Pool, PoolLoop
from swergio_al.learning import ActiveLearner
from swergio_al.recipes import make_recipe
from swergio_al.sources import load_source

URL = os.environ.get("SWERGIO_AL_URL", "ws://127.0.0.1:8080/ws")

reviews = load_source("examples/reviews/reviews.csv", text="text", id_column="id")
recipe = make_recipe("text", reviews)     # hashed words and word pairs + SGDClassifier
pool = Pool(ids=[item.sample_id for item in reviews.items], inputs=recipe.inputs,
            features=recipe.features, render=lambda i: reviews.render(reviews.items[i]))
loop = PoolLoop(ActiveLearner(recipe.estimator, classes=["positive", "negative"]), pool,
                name="reviews-model", url=URL, feedback_room="feedback/reviews",
                answer={"type": "choice", "choices": ["positive", "negative"]}, budget=40)


async def main() -> None:
    async with loop:                 # label at http://127.0.0.1:8080/label/feedback/reviews
        await loop.finished.wait()   # 40 labels, each learned at once, the next one asked


if __name__ == "__main__":
    asyncio.run(main())
# --8<-- [end:loop]
