"""Use the model `swergio-al label` saved: docs/label-your-data.md. Run it in the folder
where the quick start ran (it wrote reviews-labels/)."""

# --8<-- [start:load]
import skops.io as sio

path = "reviews-labels/model.skops"
unknown = sio.get_untrusted_types(file=path)  # types skops does not trust by itself
print("trusting:", unknown)  # the built-in recipes need none; read this list for your own
model = sio.load(path, trusted=unknown)
print(model.predict(["The kettle broke after two weeks.", "Works exactly as described."]))
# --8<-- [end:load]
