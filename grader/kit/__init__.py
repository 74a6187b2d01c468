"""What several drills' checks share: property laws as check factories (`laws`), the lookup
from a measured value to the mistake that produces it (`lookup`), and the tiny networks the
checks build (`nets`). A drill's own modules hold only its telling checks."""
