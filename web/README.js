// swergio_al browser side
