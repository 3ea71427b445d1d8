"""Charts and pictures from numbers: pure functions from arrays or tensors to a Plotly figure (plots.py holds the
shared style, one module per page family) or to a picture (render.py). A leaf: nothing here imports the rest of app/
or Streamlit."""
