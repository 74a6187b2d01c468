"""What several drills' checks share, so that a drill's own modules hold only its telling checks:

- `laws`: property laws as check factories (a scalar out, inputs unchanged, invariance to
  swapping, reordering and rescaling, gradients reach the inputs, finite at an extreme setting,
  float64 kept, N = 1, known answers);
- `lookup`: from a measured value to the mistake that produces it;
- `mistakes`: the words of the mistakes several drills name;
- `trace`: the training tracer (the checks' own augmentation in place of the learner's, every
  loss call traced back to its data rows), for every drill that grades a training loop;
- `nets`: the tiny networks the checks build; `compare`: snapshots of a network's tensors.
"""
