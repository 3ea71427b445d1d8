"""The computations behind the pages: cached (st.cache_data / st.cache_resource, shared by every session) and free of
drawing: no st.* widget or progress bar here. A long computation is a generator that yields its progress, and the page
draws it. core.py holds the shared ones (sample photos, image tensors, the forward process, Denoise's sweep); one module
per page family beside it; estimates.py says how long a run will take; models.py is the process-wide cache of loaded
networks."""
